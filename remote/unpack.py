"""One tar member from the instance into place: checked first (a regular file that was asked
for, a sane mtime), written beside its destination, its size checked, then renamed in; a local
file the pull did not write is renamed aside first (remote/pullrecord.py)."""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

from remote import pullrecord
from remote.errors import UnsafePathError
from remote.listing import MAX_MTIME, Entry
from remote.progress import Progress
from remote.pullpaths import mkdirs, refusing, safe_relpath, temp_name
from remote.tarstream import TarReader


def check_member(member: tarfile.TarInfo, wanted: Mapping[str, Entry]) -> str:
    """The member's relative path if it is a regular file we asked for; else UnsafePathError."""
    rel = safe_relpath(member.name)
    if member.type == tarfile.GNUTYPE_SPARSE:
        raise UnsafePathError(rel, "tar member is a GNU sparse file, which is not unpacked")
    if not member.isreg():
        kind = "symlink" if member.issym() else "hard link" if member.islnk() else (
            "directory" if member.isdir() else "device or special file")
        raise UnsafePathError(rel, f"tar member is a {kind}, only regular files are taken")
    if rel not in wanted:
        raise UnsafePathError(rel, "tar member that was not asked for")
    if not abs(member.mtime) < MAX_MTIME:
        raise UnsafePathError(rel, f"tar member with an mtime out of range ({member.mtime})")
    return rel


def extract(
    archive: TarReader, member: tarfile.TarInfo, root: Path, rel: str, progress: Progress, *,
    keep: bool = False,
) -> str | None:
    """Write one member next to its destination, check its size, then rename it into place;
    with `keep`, the local file there is renamed aside first (its new path returned). A local
    error on this path refuses it (refusing); the reader skips the rest of its data."""
    dest = root / rel
    tmp = temp_name(dest, "pull-part")
    with refusing(rel):
        mkdirs(root, dest.parent, rel)
        if dest.is_symlink() or (dest.exists() and not dest.is_file()):
            raise UnsafePathError(rel, "a local link or directory is in the way; left alone")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:

            def write_all(data: memoryview) -> None:
                with refusing(rel):
                    while data:
                        data = data[out.write(data) or 0:]

            archive.copy_to(write_all, lambda n: progress.advance(nbytes=n))
            with refusing(rel):
                written = os.fstat(out.fileno()).st_size
                if written != member.size:
                    raise tarfile.ReadError(f"{rel}: wrote {written} of {member.size} bytes")
                os.fchmod(out.fileno(), member.mode & 0o777)
        kept = None
        with refusing(rel):
            os.utime(tmp, (member.mtime, member.mtime))
            if keep and (dest.exists() or dest.is_symlink()):
                aside = pullrecord.keep_name(dest)
                os.rename(dest, aside)
                kept = str(aside.relative_to(root))
            os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    progress.advance(files=1)
    return kept
