"""What a sync finds on the instance and what it decides to send: the listing session's
output parsed (tools, DEST's files, the manifest of what the last sync sent), and the plan
(send what differs in size, whole-second mtime or mode; delete only what the manifest lists,
the listing still shows and is gone here). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from remote.listing import parse_records
from remote.selection import FS_ENCODING, FS_ERRORS, LocalFile

MANIFEST_HEADER = "vast-gpu-sync manifest 1"


@dataclass(frozen=True)
class RemoteFile:
    """One entry of DEST's listing: ``kind`` is find's %y (f, l)."""

    kind: str
    size: int
    mtime: int
    mode: int
    link: str = ""


@dataclass(frozen=True)
class RemoteState:
    tools: frozenset[str]
    files: dict[str, RemoteFile]
    manifest: frozenset[str]


@dataclass(frozen=True)
class Plan:
    send: list[LocalFile]
    delete: list[str]
    unchanged: int
    manifest: list[str] | None
    """The new manifest when it differs from the remote one, else None."""


def parse_state(raw: bytes) -> RemoteState:
    """Parse _state_command's output (without LISTING_END): tools, a blank field, find's
    records (remote/listing.py parses them, two fields each), a blank field, then the manifest.
    A find that cannot -printf (busybox) lists nothing, so everything is sent; a record that
    does not parse is simply sent again."""
    fields = raw.split(b"\0")
    i = 0
    tools = set()
    while i < len(fields) and fields[i]:
        tools.add(fields[i].decode(FS_ENCODING, FS_ERRORS))
        i += 1
    start = i = i + 1
    while i + 1 < len(fields) and fields[i]:
        i += 2
    entries, _unreadable = parse_records(fields[start:i])
    files = {e.rel: RemoteFile(e.kind, e.size, int(e.mtime), e.mode, e.link) for e in entries}
    manifest = parse_manifest(b"\0".join(fields[i + 1:]).decode(FS_ENCODING, FS_ERRORS))
    return RemoteState(frozenset(tools), files, manifest)


def parse_manifest(text: str) -> frozenset[str]:
    """The manifest's paths. Each ends with NUL, so the last field is empty unless the file
    was cut short, and then it may be a truncated name: dropped either way. Anything that
    could point outside DEST is dropped too."""
    names = text.split("\0")
    if len(names) < 2 or names[0] != MANIFEST_HEADER:
        return frozenset()
    return frozenset(n for n in names[1:-1] if n and _safe_relative(n))


def render_manifest(paths: Iterable[str]) -> bytes:
    return "".join(f"{p}\0" for p in [MANIFEST_HEADER, *paths]).encode(FS_ENCODING, FS_ERRORS)


def _safe_relative(path: str) -> bool:
    parts = path.split("/")
    return not path.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def unchanged(local: LocalFile, remote: RemoteFile | None) -> bool:
    if remote is None:
        return False
    if local.link is not None:
        return remote.kind == "l" and remote.link == local.link
    return (remote.kind == "f" and remote.size == local.size and remote.mtime == local.mtime
            and remote.mode == local.mode)


def make_plan(local: list[LocalFile], remote: RemoteState) -> Plan:
    """What to send and what to delete; pure."""
    send = [f for f in local if not unchanged(f, remote.files.get(f.path))]
    here = {f.path for f in local}
    delete = sorted(p for p in remote.manifest - here if p in remote.files)
    new_manifest = sorted(here)
    manifest = None if frozenset(new_manifest) == remote.manifest else new_manifest
    return Plan(send, delete, len(local) - len(send), manifest)
