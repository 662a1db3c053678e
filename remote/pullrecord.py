"""What a pull wrote, so the next one knows which local files are its own to replace.

A pull replaces a local file only when it is the one an earlier pull left there (same size and
whole-second mtime as recorded in `<local_dir>/.vast-gpu-pull`). Any other local file in the
way (written or edited here, or there before the first pull) is renamed to `<name>.local`
(`.local-2`, ... when taken) before the instance's version takes its name: nothing written on
this side is lost, and the pulled tree still mirrors the instance. The record is one line per
file, `size mtime name` with the name NUL-terminated (names need not be UTF-8); one that cannot
be read counts as empty, which only means more copies are kept.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RECORD_NAME = ".vast-gpu-pull"
HEADER = b"vast-gpu-pull record 1\n"
KEEP_SUFFIX = ".local"

Stamp = tuple[int, int]
"""(size, whole-second mtime) of a file as the pull wrote it."""


def load(root: Path) -> dict[str, Stamp]:
    try:
        data = (root / RECORD_NAME).read_bytes()
    except OSError:
        return {}
    if not data.startswith(HEADER):
        return {}
    record: dict[str, Stamp] = {}
    for line in data[len(HEADER):].split(b"\0\n"):
        size, _, rest = line.partition(b" ")
        mtime, _, name = rest.partition(b" ")
        try:
            record[os.fsdecode(name)] = (int(size), int(mtime))
        except ValueError:
            continue  # a damaged line: that file is treated as not the pull's own
    return record


def save(root: Path, record: dict[str, Stamp]) -> None:
    """Atomically (a killed pull leaves the old record or the new one, never half)."""
    body = b"".join(f"{size} {mtime} ".encode() + os.fsencode(name) + b"\0\n"
                    for name, (size, mtime) in sorted(record.items()))
    tmp = root / f"{RECORD_NAME}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(HEADER + body)
        os.replace(tmp, root / RECORD_NAME)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def stamp(st: os.stat_result) -> Stamp:
    return st.st_size, int(st.st_mtime)


def keep_name(dest: Path) -> Path:
    """A free name beside dest for the local file the pull must not overwrite."""
    candidate = dest.with_name(dest.name + KEEP_SUFFIX)
    n = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = dest.with_name(f"{dest.name}{KEEP_SUFFIX}-{n}")
        n += 1
    return candidate
