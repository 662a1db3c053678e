"""Output that cannot fail: a write to a closed pipe or a lost terminal is dropped, not raised.

`inv deploy ... | tee log` and Ctrl-C kills tee with the same SIGINT; every later print would
raise BrokenPipeError, and the first one on the teardown path would leave the machine billing.
So everything the workflow prints goes through a SafeStream: the first write that fails points
the stream's file descriptor at /dev/null (Python's own advice for EPIPE, so the interpreter's
flush at exit is quiet too) and every later write is dropped. Nothing a print does can stand
between a rented instance and its DELETE.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class SafeStream:
    """A text stream whose write and flush never raise; other attributes are the wrapped one's."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.broken = stream is None

    @property
    def wrapped(self) -> TextIO | None:
        return self._stream

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)  # type: ignore[union-attr]
            except (OSError, ValueError):  # EPIPE, EIO, or a closed file object
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()  # type: ignore[union-attr]
            except (OSError, ValueError):
                self._break()

    def isatty(self) -> bool:
        try:
            return not self.broken and self._stream.isatty()  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _break(self) -> None:
        """Stop writing; point the descriptor at /dev/null so whatever is still buffered (and
        any other writer of the same descriptor) goes nowhere instead of failing again."""
        self.broken = True
        try:
            fd = self._stream.fileno()  # type: ignore[union-attr]
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


def safe(stream: TextIO | None) -> SafeStream:
    """`stream` as a SafeStream (itself when it already is one)."""
    return stream if isinstance(stream, SafeStream) else SafeStream(stream)


def say(text: str, out: TextIO | None = None) -> None:
    """print(text) to `out` (default: the current sys.stdout) that can never raise."""
    stream = safe(out if out is not None else sys.stdout)
    stream.write(text + "\n")
    stream.flush()


@contextmanager
def safe_std_streams() -> Iterator[None]:
    """sys.stdout and sys.stderr as SafeStreams for the block: every print anywhere below
    (invoke, remote/, the provider's client) is covered, not only ours."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = safe(sys.stdout), safe(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved
