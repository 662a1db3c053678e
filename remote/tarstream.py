"""Read a tar stream from the instance without tarfile's stream layers (about 1.7 times
faster unpacking, measured on a 256 MiB file): headers parsed by tarfile, data copied with
readinto, a big member written from a second thread."""

from __future__ import annotations

import queue
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

CHUNK = 1 << 20
THREADED_MIN = 8 * CHUNK
BUFFERS = 4
BLOCK = 512
NUL_BLOCK = bytes(BLOCK)
NAME_ENCODING = "utf-8"


class TarReader:
    """A streaming tar reader that copies file data with readinto, without tarfile's stream
    layers (which copy every chunk several times).

    Headers are still parsed by tarfile.TarInfo.frombuf (ustar and GNU, base-256 sizes); GNU
    long names and pax path/linkpath/size/mtime records are applied; a stream that ends
    without the end-of-archive blocks is an error (cut short). Iterate for members; read a
    regular member's data with copy_to(), or let the next iteration skip it.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._left = 0  # data bytes of the current member not read yet
        self._pad = 0
        self._buffer = bytearray(CHUNK)

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            self._skip()
            block = self._read(BLOCK, at_header=True)
            if block == NUL_BLOCK:
                return
            info = tarfile.TarInfo.frombuf(block, NAME_ENCODING, "surrogateescape")
            if info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                text = self._extended(info.size).split(b"\0", 1)[0]
                name = text.decode(NAME_ENCODING, "surrogateescape")
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    long_name = name
                else:
                    long_link = name
                continue
            if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
                pax.update(_pax_records(self._extended(info.size)))
                continue
            if info.type == tarfile.XGLTYPE:  # global pax defaults: nothing we use
                self._extended(info.size)
                continue
            _apply(info, long_name, long_link, pax)
            long_name = long_link = None
            pax = {}
            has_data = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
            self._left = info.size if has_data else 0
            self._pad = -self._left % BLOCK
            yield info

    def copy_to(self, write: Callable[[memoryview], object],
                advance: Callable[[int], object]) -> int:
        """The current member's data, chunk by chunk, to `write`; the number of bytes. A big
        member is written from a second thread, so reading the pipe and writing the disk
        overlap (measured 10-15% faster on a 1 GiB file)."""
        if self._left >= THREADED_MIN:
            return self._copy_threaded(write, advance)
        view = memoryview(self._buffer)
        copied = 0
        while self._left:
            n = self._read_into(view[: min(self._left, CHUNK)])
            write(view[:n])
            advance(n)
            self._left -= n
            copied += n
        return copied

    def _copy_threaded(self, write: Callable[[memoryview], object],
                       advance: Callable[[int], object]) -> int:
        full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(BUFFERS):
            free.put(bytearray(CHUNK))
        failed: list[BaseException] = []

        def writer() -> None:
            while (item := full.get()) is not None:
                buf, n = item
                if not failed:  # after a failure, only hand the buffers back
                    try:
                        write(memoryview(buf)[:n])
                    except BaseException as exc:  # re-raised in the reading thread
                        failed.append(exc)
                free.put(buf)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        copied = 0
        try:
            while self._left and not failed:
                buf = free.get()
                n = self._read_into(memoryview(buf)[: min(self._left, CHUNK)])
                full.put((buf, n))
                advance(n)
                self._left -= n
                copied += n
        finally:
            full.put(None)
            thread.join()
        if failed:
            raise failed[0]
        return copied

    def _read_into(self, view: memoryview) -> int:
        readinto = getattr(self.stream, "readinto", None)
        if readinto is not None:
            n = readinto(view)
        else:
            data = self.stream.read(len(view))
            n = len(data)
            view[:n] = data
        if not n:
            raise tarfile.ReadError(f"unexpected end of data, {self._left} bytes short")
        return n

    def _extended(self, size: int) -> bytes:
        if size > 1 << 20:
            raise tarfile.ReadError(f"extended header of {size} bytes")
        return self._read(size + (-size % BLOCK))[:size]

    def _skip(self) -> None:
        todo, self._left, self._pad = self._left + self._pad, 0, 0
        while todo:
            todo -= len(self._read(min(todo, CHUNK)))

    def _read(self, size: int, *, at_header: bool = False) -> bytes:
        parts, got = [], 0
        while got < size:
            chunk = self.stream.read(size - got)
            if not chunk:
                where = "before the end-of-archive marker" if at_header and not got else (
                    f"{got} of {size} bytes into a block")
                raise tarfile.ReadError(f"the stream ended {where} (cut short?)")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)


def _pax_records(data: bytes) -> dict[str, str]:
    """`LEN key=value\\n` records (POSIX pax extended header)."""
    records = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise tarfile.ReadError("bad pax header") from None
        record = data[space + 1 : pos + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise tarfile.ReadError("bad pax header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode(NAME_ENCODING, "replace")] = value.decode(NAME_ENCODING,
                                                                    "surrogateescape")
        pos += length
    return records


def _apply(info: tarfile.TarInfo, long_name: str | None, long_link: str | None,
           pax: Mapping[str, str]) -> None:
    if long_name is not None:
        info.name = long_name
    if long_link is not None:
        info.linkname = long_link
    try:
        if "path" in pax:
            info.name = pax["path"]
        if "linkpath" in pax:
            info.linkname = pax["linkpath"]
        if "size" in pax:
            info.size = int(pax["size"])
        if "mtime" in pax:
            info.mtime = float(pax["mtime"])
    except ValueError:
        raise tarfile.ReadError("bad pax size or mtime") from None
    if info.size < 0:
        raise tarfile.ReadError("negative size")
