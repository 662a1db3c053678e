"""A pull stream that may come gzip-compressed: told by its first two bytes, inflated here.

The remote tar compresses only when asked and when the instance has gzip
(remote/pullstreams.py), so the local side cannot know in advance; a tar archive never starts
with gzip's magic (its first bytes are a member name, `./...` for ours). What comes back reads
like the raw stream (read, readinto), so remote/tarstream.py's TarReader is the same either
way. A gzip stream cut short is an EOFError and a corrupt one a tarfile.ReadError: what a pull
already reports as a broken stream.
"""

from __future__ import annotations

import tarfile
import zlib
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
READ = 256 << 10
"""Compressed bytes read at a time: small enough that a slow link still shows progress."""


class Inflated:
    """The raw stream's bytes inflated; also counts the compressed bytes that came."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._head = head
        self.wire_bytes = len(head)

    def read(self, n: int = -1) -> bytes:
        limit = n if n > 0 else READ
        while True:
            if self._z.unconsumed_tail:
                data = self._inflate(self._z.unconsumed_tail, limit)
            elif self._z.eof:
                return b""
            else:
                if self._head:
                    chunk, self._head = self._head, b""
                else:
                    chunk = self._raw.read(READ)
                    self.wire_bytes += len(chunk)
                if not chunk:
                    raise EOFError(f"the gzip stream was cut short after {self.wire_bytes} "
                                   "compressed bytes")
                data = self._inflate(chunk, limit)
            if data:
                return data

    def readinto(self, buffer: memoryview) -> int:
        return _fill(buffer, self.read(len(buffer)))

    def _inflate(self, chunk: bytes, limit: int) -> bytes:
        try:
            return self._z.decompress(chunk, limit)
        except zlib.error as exc:
            raise tarfile.ReadError(f"the gzip stream is corrupt: {exc}") from None


class Prefixed:
    """The raw stream with the bytes already read for the sniff put back in front."""

    def __init__(self, raw: BinaryIO, head: bytes) -> None:
        self._raw = raw
        self._head = head

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head if n < 0 or n >= len(head) else self._keep(head, n)
        return self._raw.read(n)

    def readinto(self, buffer: memoryview) -> int:
        readinto = getattr(self._raw, "readinto", None)
        if self._head or readinto is None:
            return _fill(buffer, self.read(len(buffer)))
        return readinto(buffer) or 0

    def _keep(self, head: bytes, n: int) -> bytes:
        self._head = head[n:]
        return head[:n]


def open_stream(raw: BinaryIO) -> Inflated | Prefixed:
    """The stream to unpack: inflated when it starts with gzip's magic, else as it came."""
    head = b""
    while len(head) < len(GZIP_MAGIC):
        chunk = raw.read(len(GZIP_MAGIC) - len(head))
        if not chunk:
            break
        head += chunk
    if head == GZIP_MAGIC:
        return Inflated(raw, head)
    return Prefixed(raw, head)


def _fill(buffer: memoryview, data: bytes) -> int:
    buffer[: len(data)] = data
    return len(data)
