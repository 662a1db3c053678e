"""A GNU tar stream of local files, built here (tarfile makes the headers; its own stream mode
costs several times more CPU per small file): what sync's tar transports send."""

from __future__ import annotations

import os
import stat
import tarfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from remote.errors import SyncSourceError
from remote.progress import Progress
from remote.selection import FS_ENCODING, FS_ERRORS, LocalFile

TAR_BUFFER = 256 * 1024


def write_tar(out: IO[bytes], src: Path, files: list[LocalFile], progress: Progress | None,
              *, extra: Iterable[tuple[str, bytes]] = ()) -> None:
    """Stream ``extra`` (name, content) members, then ``files``, as a GNU tar into ``out``:
    owned by root, mtimes in whole seconds, links as links. Each file is opened without
    following links and described by fstat, so its header matches what is read. tarfile
    makes the headers; the stream is assembled here, as tarfile's own stream mode costs
    several times more CPU per small file."""
    buf = bytearray()
    written = 0

    def flush(at_least: int = TAR_BUFFER) -> None:
        nonlocal written
        if len(buf) >= at_least:
            out.write(bytes(buf))
            written += len(buf)
            buf.clear()

    def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
        buf.extend(info.tobuf(tarfile.GNU_FORMAT, FS_ENCODING, FS_ERRORS))
        buf.extend(data)
        flush()

    for name, content in extra:
        info = _tarinfo(name)
        info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
        add(info, content + _padding(len(content)))
    for f in files:
        info = _tarinfo(f.path)
        if f.link is not None:
            info.type, info.linkname, info.mode, info.mtime = (
                tarfile.SYMTYPE, f.link, 0o777, f.mtime)
            add(info)
        else:
            full = os.path.join(src, f.path)
            try:
                fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:
                continue  # deleted since the listing; the next sync deletes it remotely
            except OSError as exc:
                raise SyncSourceError(full, f"cannot read: {exc}") from exc
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                info.size, info.mode = st.st_size, stat.S_IMODE(st.st_mode)
                info.mtime = st.st_mtime_ns // 1_000_000_000
                add(info)
                left = info.size
                while left:
                    chunk = fh.read(min(left, TAR_BUFFER))
                    if not chunk:  # it shrank while we read: zeros, and its mtime changed,
                        chunk = b"\0" * min(left, TAR_BUFFER)  # so the next sync resends it
                    left -= len(chunk)
                    buf.extend(chunk)
                    flush()
                buf.extend(_padding(info.size))
        if progress is not None:
            progress.advance(1, info.size)
    buf.extend(b"\0" * (2 * tarfile.BLOCKSIZE))  # end of archive
    buf.extend(b"\0" * (-(written + len(buf)) % tarfile.RECORDSIZE))
    flush(0)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _tarinfo(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _empty_tar() -> bytes:
    return b"\0" * tarfile.RECORDSIZE


EMPTY_TAR = _empty_tar()
