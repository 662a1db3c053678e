"""The one line a user reads after a sync or a pull: the same words either way."""

from __future__ import annotations

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
