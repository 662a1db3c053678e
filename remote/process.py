"""A command on the instance behind one interface, whichever SSH client carries it.

RemoteProcess is what Connection.run, the listing, sync, pull and the batch streams share:
stdin written at once or fed from a thread while stdout is read; stdout read as a file, to
its end or up to a marker; stderr collected in a thread (stdout and stderr share one
flow-control window, so an unread stderr could stall stdout); a stall watch; the exit code.
Two back ends: ChannelProcess (remote/ssh.py: a channel of the paramiko Connection already
open) and OpenSshProcess (remote/openssh.py: the system ssh client, faster for bulk data).
Either one raises SshError, never its client's own exceptions; callers say what they were
doing (SyncError, PullError).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from remote.errors import SshError

CHUNK = 1 << 20
STOP_WAIT_S = 2.0
"""How long stop() waits for a process it gave up on before ending it."""


class StallWatch:
    """Calls on_stall once when touch() has not been called for stall_s: a stream that stops
    mid-way (a remote tar stopped, a link gone quiet) must not hold a transfer, and the
    instance billing, forever."""

    def __init__(self, stall_s: float, on_stall: Callable[[], object]) -> None:
        self.stall_s = stall_s
        self.stalled = False
        self._on_stall = on_stall
        self._last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def touch(self) -> None:
        self._last = time.monotonic()

    def close(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(min(1.0, self.stall_s / 4)):
            if time.monotonic() - self._last > self.stall_s:
                self.stalled = True
                self._on_stall()
                return


class _Watched:
    """A process's stdout whose every read counts as a sign of life for its StallWatch."""

    def __init__(self, stream: BinaryIO, watch: StallWatch) -> None:
        self._stream, self._watch = stream, watch

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._watch.touch()
        return data

    def read1(self, n: int = -1) -> bytes:
        data = self._stream.read1(n)  # type: ignore[attr-defined]
        self._watch.touch()
        return data

    def readinto(self, buffer: memoryview) -> int:
        n = self._stream.readinto(buffer)  # type: ignore[attr-defined]
        self._watch.touch()
        return n or 0


class RemoteProcess:
    """One remote command: write() or send() its stdin, read .stdout, then finish(), stop()
    or capture(); close() releases it whatever happened. The back ends fill in the _hooks."""

    stdout: BinaryIO
    watch: StallWatch | None = None

    def __init__(self, stdout: BinaryIO, read_stderr: Callable[[int], bytes] | None) -> None:
        """``read_stderr`` None: the caller reads stderr itself, interleaved with stdout."""
        self.stdout = stdout
        self._err = bytearray()
        self._threads: list[threading.Thread] = []
        if read_stderr is not None:
            self._threads.append(threading.Thread(target=collect, args=(read_stderr, self._err),
                                                  daemon=True))
            self._threads[0].start()

    # --- stdin -------------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Send data now (blocks while the remote side does not read)."""
        self._write(data)
        if self.watch is not None:
            self.watch.touch()

    def send(self, data: bytes) -> None:
        """Feed data, then EOF, from a thread: the command may write while it still reads."""
        feeder = threading.Thread(target=self._feed, args=(data,), daemon=True)
        self._threads.append(feeder)
        feeder.start()

    def close_stdin(self) -> None:
        self._close_stdin()

    def _feed(self, data: bytes) -> None:
        try:
            self.write(data)
            self.close_stdin()
        except (OSError, SshError):
            pass  # the reading side reports the broken stream

    # --- stdout ------------------------------------------------------------------------------

    def watch_for_stall(self, stall_s: float) -> None:
        """From now on, stall_s without a byte either way ends the process (reads end early)."""
        self.watch = StallWatch(stall_s, self.close)
        self.stdout = _Watched(self.stdout, self.watch)  # type: ignore[assignment]

    @property
    def stalled(self) -> bool:
        return self.watch is not None and self.watch.stalled

    def read_all(self) -> bytes:
        out = bytearray()
        while chunk := self.stdout.read(CHUNK):
            out.extend(chunk)
        return bytes(out)

    def read_until(self, marker: bytes) -> bytes | None:
        """stdout up to ``marker`` (which must end what was sent so far), without it; None when
        stdout ends first."""
        out = bytearray()
        while not out.endswith(marker):
            chunk = self.stdout.read1(CHUNK)
            if not chunk:
                return None
            out.extend(chunk)
        return bytes(out[: -len(marker)])

    # --- the end -----------------------------------------------------------------------------

    @property
    def stderr(self) -> bytes:
        return bytes(self._err)

    def capture(self) -> tuple[int, bytes, bytes]:
        """EOF on stdin, all of stdout, the exit code, all of stderr."""
        self.close_stdin()
        out = self.read_all()
        code = self.wait()
        return code, out, self.stderr

    def finish(self) -> tuple[int, str]:
        """Read stdout to the end (so the command is not stopped by a closed pipe); the exit
        code and stderr."""
        while self.stdout.read(CHUNK):
            pass
        return self.wait(), self.stderr.decode(errors="replace")

    def stop(self, wait_s: float = STOP_WAIT_S) -> tuple[int, str]:
        """Give up on it: the exit code if it ends within wait_s, else -1; stderr."""
        code = self._wait(wait_s)
        self._join(STOP_WAIT_S)
        return code, self.stderr.decode(errors="replace")

    def wait(self) -> int:
        """The exit code (-1: killed by a signal, or the link died), once stderr is read."""
        code = self._wait(None)
        self._join(None)
        return code

    def close(self) -> None:
        """Release it, best effort: on a link that just died closing can raise too, and that
        must not replace the error that said what broke."""
        if self.watch is not None:
            self.watch.close()
        with contextlib.suppress(OSError, EOFError, SshError):
            self._abort()

    def _join(self, timeout: float | None) -> None:
        if self.watch is not None:
            self.watch.close()
        for thread in self._threads:
            thread.join(timeout)

    # --- what a back end provides ------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def _close_stdin(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """End the process now (and its stdout with it)."""
        raise NotImplementedError

    def _wait(self, timeout: float | None) -> int:
        """The exit code; after `timeout` seconds, end it and return -1."""
        raise NotImplementedError


def collect(read: Callable[[int], bytes], into: bytearray) -> None:
    """Read a stream to its end into a buffer (stderr, in its own thread)."""
    try:
        while chunk := read(65536):
            into.extend(chunk)
    except (OSError, EOFError):
        pass
