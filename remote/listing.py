"""The instance's tree as pull sees it: one GNU find run, NUL-separated records, each parsed
into an Entry or set aside with the reason it could not be read (never fatal)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from remote.errors import PullError, tail
from remote.ssh import Connection

FIND_FORMAT = "'%y %s %T@ %m %P\\0%l\\0'"
"""GNU find's -printf for one record (shell-quoted): type, size, mtime, mode, path, then the
link target; NUL-separated, so any name survives."""
MAX_MTIME = float(1 << 40)
"""Seconds either side of 1970 a file time may be (35,000 years); beyond, utime overflows."""


@dataclass(frozen=True)
class Entry:
    """One path of the remote listing."""

    rel: str
    kind: str  # "f" file, "d" directory, "l" symlink, other find %y letters for the rest
    size: int
    mtime: float
    mode: int
    link: str = ""


class Stalled(Exception):
    """A remote command sent nothing for its stall timeout."""


def capture(conn: Connection, command: str,
             stall_s: float | None = None) -> tuple[int, bytes, bytes]:
    """Run a command for its raw bytes (file names need not be UTF-8); Stalled when the
    command sends nothing for stall_s."""
    proc = conn.start(command)
    try:
        if stall_s is not None:
            proc.watch_for_stall(stall_s)
        code, out, err = proc.capture()
    finally:
        proc.close()
    if proc.stalled:
        raise Stalled
    return code, out, err


def list_remote(
    conn: Connection, remote_dir: str, *, warn: Callable[[str], None] = lambda _t: None,
    command: str | None = None, stall_s: float | None = None,
) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Every path under remote_dir, with type, size, mtime, mode and link target (`cd` first,
    so a remote_dir that is itself a symlink is followed, as tar -C follows it); and the
    records that could not be read (parse_listing)."""
    code, out, err = capture(conn, command or list_command(remote_dir), stall_s)
    t = conn.target
    if code == 66:
        raise PullError(t.host, t.port, remote_dir, "no such directory on the instance")
    if code != 0:
        said = tail(err)
        if not out:
            raise PullError(t.host, t.port, remote_dir, f"listing failed (exit {code}): {said}")
        warn(f"listing {remote_dir} was incomplete: {said}")
    return parse_listing(out)


def list_command(remote_dir: str) -> str:
    """find's records, NUL-separated; exit 66 when remote_dir is missing."""
    return (f"cd {shlex.quote(remote_dir)} 2>/dev/null || "
            "{ echo 'no such directory' >&2; exit 66; }; "
            f"find . -mindepth 1 -printf {FIND_FORMAT}")


def parse_listing(data: bytes) -> tuple[list[Entry], list[tuple[str, str]]]:
    """find's FIND_FORMAT records (names decoded as the OS decodes file names), and (record,
    reason) for each record that does not read as one: skipped, never fatal."""
    return parse_records(data.split(b"\0"))


def parse_records(fields: Sequence[bytes]) -> tuple[list[Entry], list[tuple[str, str]]]:
    """The records in these NUL-separated fields, two each (pull's listing, sync's state)."""
    entries, bad = [], []
    for i in range(0, len(fields) - 1, 2):
        head, link = fields[i], fields[i + 1]
        try:
            entries.append(_entry(head, link))
        except ValueError as exc:
            bad.append((repr(head[:200]), f"unreadable listing record ({exc})"))
    return entries, bad


def _entry(head: bytes, link: bytes) -> Entry:
    parts = head.split(b" ", 4)
    if len(parts) != 5 or len(parts[0]) != 1 or not parts[0].isalpha():
        raise ValueError("not `type size mtime mode name`")
    kind, size, mtime, mode, rel = parts
    entry = Entry(os.fsdecode(rel), kind.decode(), int(size), float(mtime), int(mode, 8),
                  os.fsdecode(link))
    if entry.size < 0 or not abs(entry.mtime) < MAX_MTIME:  # also NaN
        raise ValueError(f"size {entry.size} or mtime {entry.mtime} out of range")
    return entry
