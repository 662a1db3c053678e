"""Where a pulled file may land: names from the instance made safe (relative, no `..`), local
symlinks never followed out of the tree, and a local error about one path turned into a
refusal of that path (UnsafePathError) unless it is about the whole disk."""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from remote.errors import UnsafePathError
from remote.listing import Entry

FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""Local errors that stop the pull: not about one path, so every other file would fail too."""


def safe_relpath(name: str) -> str:
    """The normalised relative path for a name from the instance, or UnsafePathError: no
    absolute paths, no `..`, nothing empty."""
    if not name or "\0" in name:
        raise UnsafePathError(name, "empty name or NUL in it")
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise UnsafePathError(name, "absolute path")
    parts = [p for p in PurePosixPath(name).parts if p != "."]
    if ".." in parts:
        raise UnsafePathError(name, "`..` component")
    if not parts:
        raise UnsafePathError(name, "names the target directory itself")
    return "/".join(parts)


@contextlib.contextmanager
def refusing(rel: str) -> Iterator[None]:
    """A local error about this one path (name too long, permission, a loop) refuses the path:
    skip and warn. A full or read-only disk stops the pull (FATAL_ERRNOS)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FATAL_ERRNOS:
            raise
        raise UnsafePathError(rel, f"cannot be written here: {exc.strerror or exc}") from exc


def check_link(rel: str, target: str) -> None:
    """A symlink is kept only when it resolves inside the tree, from where it stands."""
    if not target:
        raise UnsafePathError(rel, "symlink with an empty target")
    if target.startswith("/"):
        raise UnsafePathError(rel, f"symlink to an absolute path ({target}) leads outside")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if resolved == ".." or resolved.startswith("../") or resolved == ".":
        raise UnsafePathError(rel, f"symlink to {target} leads outside the pulled tree")


def plan_entry(root: Path, entry: Entry) -> str:
    """"fetch", "same", "link" (make it later) or "dir" (made now); UnsafePathError for what
    must be refused. Links are judged by their text here; make_links checks chains."""
    rel = safe_relpath(entry.rel)
    dest = root / rel
    check_inside(root, dest.parent, rel)
    if entry.kind == "d":
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise UnsafePathError(rel, "a local non-directory is in the way; left alone")
        mkdirs(root, dest, rel)
        return "dir"
    if entry.kind == "l":
        check_link(rel, entry.link)
        if dest.is_symlink():
            return "same" if os.readlink(dest) == entry.link else "link"
        if dest.exists():
            raise UnsafePathError(rel, "a local file is in the way of a symlink; left alone")
        return "link"
    if entry.kind != "f":
        raise UnsafePathError(rel, f"not a regular file, directory or symlink (find type "
                                   f"{entry.kind!r})")
    if dest.is_symlink() or (dest.exists() and not dest.is_file()):
        raise UnsafePathError(rel, "a local link or directory is in the way; left alone")
    try:
        st = dest.stat()
    except FileNotFoundError:
        return "fetch"
    if st.st_size == entry.size and int(st.st_mtime) == int(entry.mtime):
        return "same"
    return "fetch"


def check_inside(root: Path, path: Path, rel: str) -> None:
    """Through whatever local symlinks exist now, `path` must stay under root."""
    real = os.path.realpath(path)
    if os.path.commonpath([str(root), real]) != str(root):
        raise UnsafePathError(rel, f"a local symlink leads it outside {root} (to {real})")


def mkdirs(root: Path, path: Path, rel: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise UnsafePathError(rel, f"a local file is in the way ({exc.strerror})") from exc
    check_inside(root, path, rel)


def make_link(root: Path, entry: Entry) -> None:
    rel = safe_relpath(entry.rel)
    dest = root / rel
    mkdirs(root, dest.parent, rel)
    if dest.exists() and not dest.is_symlink():
        raise UnsafePathError(rel, "a local file is in the way of a symlink; left alone")
    tmp = temp_name(dest, "pull-link")
    tmp.unlink(missing_ok=True)
    os.symlink(entry.link, tmp)
    os.replace(tmp, dest)  # replaces an older pulled link only: files were refused above


def check_sizes(root: Path, expected: Mapping[str, int]) -> list[str]:
    """Each file on disk against the size it should have; a line per mismatch."""
    problems = []
    for rel, size in expected.items():
        try:
            actual = (root / rel).stat().st_size
        except OSError as exc:
            problems.append(f"{rel}: {exc.strerror}")
            continue
        if actual != size:
            problems.append(f"{rel}: {actual} bytes, expected {size}")
    return problems


def temp_name(dest: Path, suffix: str) -> Path:
    """A hidden name beside dest; short, so a dest name near the 255-byte limit still has one."""
    return dest.with_name(f".{dest.name[:80]}.{os.getpid()}.{suffix}")


def make_links(root: Path, links: list[Entry], same: list[str],
               refuse: Callable[[str, str], None]) -> list[str]:
    """Make the links, then check where each leads now: a chain of links can leave the tree
    when each alone stays inside (`d/y -> ..`, `x -> d/y/../..`). One made now that escapes is
    removed again; an older one (`same`: already there, as the instance has it) is only
    reported, never deleted. The links made."""
    made = []
    for entry in links:
        try:
            with refusing(entry.rel):
                make_link(root, entry)
            made.append(entry.rel)
        except UnsafePathError as exc:
            refuse(exc.path, exc.reason)
    same = list(same)
    escaping = True
    while escaping:  # removing one link can change where the others lead
        escaping = False
        for rel in [*made, *same]:
            real = os.path.realpath(root / rel)
            if os.path.commonpath([str(root), real]) == str(root):
                continue
            if rel in made:
                (root / rel).unlink()
                made.remove(rel)
                refuse(rel, f"through other symlinks it leads outside (to {real})")
                escaping = True
                break
            same.remove(rel)
            refuse(rel, f"an existing link that now leads outside (to {real}); left alone, "
                        "check it")
    return made
