"""Task output as lines for the terminal, in time linear in the bytes (one owner for both the
batch and the detached follower).

The old way, ``re.split(partial + data)`` on every chunk, copied and rescanned the pending line
each time: output on one long line took quadratic time (50 MB: 137 s). Here each byte is
scanned once; a pending line is kept as pieces and joined once, when it ends. `\\r` ends a line
too (progress bars show while they run); a `\\r` at the end of a chunk waits for the next one,
so a `\\r\\n` split across chunks is one line end. Logs are not written from here: they get the
bytes exactly as they came.
"""

from __future__ import annotations

from collections.abc import Callable


class LineSplitter:
    """feed(bytes) -> the lines it completed; rest() -> the line still open (and forget it)."""

    def __init__(self, partial: bytes = b"") -> None:
        self._pieces: list[bytes] = [partial] if partial else []
        self._cr = False

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr:
            data, self._cr = b"\r" + data, False
        if data.endswith(b"\r"):
            data, self._cr = data[:-1], True
        parts = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if len(parts) == 1:
            if data:
                self._pieces.append(data)
            return []
        first = b"".join([*self._pieces, parts[0]])
        self._pieces = [parts[-1]] if parts[-1] else []
        return [first, *parts[1:-1]]

    def rest(self) -> bytes:
        line = b"".join(self._pieces)
        self._pieces, self._cr = [], False
        return line


class PrefixedLines:
    """Bytes of one stream shown as `prefix + line` through `write`; flushed per chunk."""

    def __init__(self, write: Callable[[str], object], flush: Callable[[], object],
                 prefix: str, partial: bytes = b"") -> None:
        self._write, self._flush, self.prefix = write, flush, prefix
        self._split = LineSplitter(partial)

    def feed(self, data: bytes) -> None:
        lines = self._split.feed(data)
        for line in lines:
            self._write(self.prefix + line.decode(errors="replace") + "\n")
        if lines:
            self._flush()

    def finish(self) -> None:
        rest = self._split.rest()
        if rest:
            self._write(self.prefix + rest.decode(errors="replace") + "\n")
        self._flush()
