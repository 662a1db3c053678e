"""Progress of a long transfer (sync, pull): files, bytes, rate and ETA.

On a terminal one line is redrawn in place (at most a few times a second); elsewhere (CI logs,
pipes) a plain line is printed at most every few seconds, so a log is readable and a stall is
visible. Both end with one summary line from finish().
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

TTY_EVERY_S = 0.2
PLAIN_EVERY_S = 5.0
MB = 1_000_000


class Progress:
    """Files, bytes, rate and ETA for a long transfer: redrawn in place on a terminal, plain
    lines (at most every few seconds and at the end) otherwise."""

    def __init__(
        self, label: str, total_files: int | None, total_bytes: int | None,
        stream: TextIO = sys.stderr, *, tty: bool | None = None,
    ) -> None:
        self.label = label
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.nbytes = 0
        self._stream = stream
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self._tty = tty
        self._every = TTY_EVERY_S if tty else PLAIN_EVERY_S
        self._start = time.monotonic()
        self._last_draw = self._start
        self._drawn_width = 0
        self._finished = False
        self._lock = threading.Lock()  # a parallel pull's streams advance it at once

    def advance(self, files: int = 0, nbytes: int = 0) -> None:
        """Count work done; redraws only when the last draw is old enough, so it is cheap to
        call per file or per chunk."""
        with self._lock:
            self.files += files
            self.nbytes += nbytes
            now = time.monotonic()
            if now - self._last_draw >= self._every:
                self._last_draw = now
                self._draw(self._line(now))

    def finish(self) -> None:
        """The summary line: "<label>: N files, X MB in T s (R MB/s)". Idempotent."""
        if self._finished:
            return
        self._finished = True
        elapsed = time.monotonic() - self._start
        rate = self.nbytes / MB / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.label}: {self.files} files, {self.nbytes / MB:.1f} MB in {elapsed:.1f} s "
            f"({rate:.1f} MB/s)"
        )
        self._draw(line, final=True)

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = self.nbytes / elapsed if elapsed > 0 else 0.0
        files = f"{self.files}" + (f"/{self.total_files}" if self.total_files is not None else "")
        mb = f"{self.nbytes / MB:.1f}"
        if self.total_bytes is not None:
            mb += f"/{self.total_bytes / MB:.1f}"
        parts = [f"{self.label}: {files} files", f"{mb} MB", f"{rate / MB:.1f} MB/s"]
        eta = self._eta(rate)
        if eta is not None:
            parts.append(f"ETA {_clock(eta)}")
        return ", ".join(parts)

    def _eta(self, rate: float) -> float | None:
        """Seconds left, from bytes when the total is known, else from files."""
        if self.total_bytes and rate > 0:
            return max(self.total_bytes - self.nbytes, 0) / rate
        elapsed = time.monotonic() - self._start
        if self.total_files and self.files and elapsed > 0:
            return max(self.total_files - self.files, 0) / (self.files / elapsed)
        return None

    def _draw(self, line: str, *, final: bool = False) -> None:
        if self._tty:
            pad = " " * max(self._drawn_width - len(line), 0)
            self._stream.write("\r" + line + pad + ("\n" if final else ""))
            self._drawn_width = 0 if final else len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
