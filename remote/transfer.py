"""What a sync or a pull did (SyncResult, PullResult), and the one line a user reads after
either: the same words both ways."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MB = 1e6


def summary(verb: str, files: int, nbytes: int, unchanged: int, seconds: float, how: str,
            also: tuple[str, ...] = ()) -> str:
    """``verb`` is "sent" or "fetched"; ``also`` holds what else the transfer did ("3
    deleted"); ``how`` the method ("tar-paramiko", "ssh, 2 streams")."""
    if not files and not also:
        return f"up to date, {unchanged} files ({seconds:.1f} s to check)"
    took = f"{seconds:.1f} s" + (f" ({how})" if how else "")
    return ", ".join([f"{files} files {verb} ({nbytes / MB:.1f} MB)", *also,
                      f"{unchanged} unchanged", took])


@dataclass(frozen=True)
class SyncResult:
    """What one sync did."""

    method: str
    files_sent: int
    bytes_sent: int
    deleted: int
    unchanged: int
    seconds: float

    def describe(self) -> str:
        """One line for the user; a sync that had nothing to send says so."""
        return summary("sent", self.files_sent, self.bytes_sent, self.unchanged, self.seconds,
                       self.method, (f"{self.deleted} deleted",) if self.deleted else ())


@dataclass
class PullResult:
    local_dir: Path
    fetched: list[str] = field(default_factory=list)
    """Files transferred (new or changed)."""
    nbytes: int = 0
    unchanged: int = 0
    links: list[str] = field(default_factory=list)
    """Symlinks made or updated."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) for everything skipped: unsafe, unreadable in the listing, a local entry
    in the way, or a name this side cannot make."""
    vanished: list[str] = field(default_factory=list)
    """Listed but not in the stream: deleted or unreadable on the instance meanwhile."""
    kept: list[tuple[str, str]] = field(default_factory=list)
    """(path, where the local file now is): local files in the way that the pull did not
    write, renamed aside before the instance's version took their name (remote/pullrecord.py)."""
    changed: list[str] = field(default_factory=list)
    """Fetched, but changed on the instance while it was read: kept as sent."""
    via: str = ""
    """"ssh" (system client), "paramiko", or "" when nothing needed fetching."""
    streams: int = 0
    """Tar streams the files came over (remote/pullstreams.py); 0 when nothing was fetched."""
    compressed: bool = False
    """The stream came gzip-compressed (a long round trip, and gzip on the instance)."""
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for the user, in sync's words."""
        how = self.via + (f", {self.streams} streams" if self.streams > 1 else "") + (
            ", gzip" if self.compressed else "")
        also = tuple(f"{len(items)} {what}" for items, what in (
            (self.links, "links made"), (self.kept, "local files kept aside"),
            (self.refused, "skipped"), (self.vanished, "vanished")) if items)
        return summary("fetched", len(self.fetched), self.nbytes, self.unchanged,
                       self.seconds, how, also)
