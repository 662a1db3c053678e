"""Which local files a sync sends: git's view of the tree when there is one (tracked files and
untracked ones git does not ignore), else every file; minus ``.vastignore`` (gitignore syntax);
never ``.git/`` nor the sync's own manifest. Symlinks are listed as links, never followed."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from remote.errors import SyncSourceError

IGNORE_FILE = ".vastignore"
MANIFEST = ".vast-gpu-sync"
"""The sync's record on the instance of the paths it sent (remote/sync.py); never sent itself."""
FS_ENCODING = "utf-8"
FS_ERRORS = "surrogateescape"  # names that are not UTF-8 still round-trip as bytes


@dataclass(frozen=True)
class LocalFile:
    """A file or symlink to sync; ``path`` is relative to src, with ``/`` separators."""

    path: str
    size: int
    mtime: int
    mode: int
    link: str | None = None



@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


class IgnoreRules:
    """gitignore-style patterns: ``*``, ``?``, ``[...]``, ``**``, trailing ``/`` for dirs only,
    a ``/`` at the start or in the middle anchors to the root, ``!`` re-includes; the last
    matching pattern wins, and nothing inside an excluded directory can be re-included."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.rules = [rule for line in lines if (rule := _compile(line)) is not None]
        self._dirs: dict[str, bool] = {}

    @classmethod
    def from_file(cls, path: Path) -> IgnoreRules:
        try:
            text = path.read_text(encoding=FS_ENCODING, errors=FS_ERRORS)
        except FileNotFoundError:
            return cls([])
        except OSError as exc:
            raise SyncSourceError(path, f"cannot read: {exc}") from exc
        return cls(text.splitlines())

    def ignored(self, path: str, *, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative, ``/``-separated) is excluded, directly or by a parent."""
        if not self.rules:
            return False
        parts = path.split("/")
        for i in range(1, len(parts)):
            if self.dir_ignored("/".join(parts[:i])):
                return True
        return self._match(path, is_dir)

    def dir_ignored(self, path: str) -> bool:
        """The directory itself matches (parents not checked; callers walk top-down)."""
        cached = self._dirs.get(path)
        if cached is None:
            cached = self._dirs[path] = self._match(path, True)
        return cached

    def _match(self, path: str, is_dir: bool) -> bool:
        result = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.fullmatch(path):
                result = not rule.negate
        return result


def _compile(line: str) -> _Rule | None:
    line = re.sub(r"(?<!\\)\s+$", "", line)  # trailing spaces, unless escaped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    parts = line.split("/")
    out = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    regex = "".join(out)
    if not anchored:
        regex = "(?:.*/)?" + regex
    return _Rule(re.compile(regex, re.DOTALL), negate, dir_only)


def _segment(part: str) -> str:
    """One path segment of a pattern as a regex: wildcards never cross a ``/``."""
    out, i = [], 0
    while i < len(part):
        c = part[i]
        if c == "\\" and i + 1 < len(part):
            out.append(re.escape(part[i + 1]))
            i += 2
            continue
        if c == "*":
            while i + 1 < len(part) and part[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1:end]
            if body[0] in "!^":
                body = "^" + body[1:]
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def select_files(src: Path) -> list[LocalFile]:
    """The files and symlinks of ``src`` to sync, sorted by path (see the module docstring)."""
    src = Path(src)
    if not src.is_dir():
        raise SyncSourceError(src, "not a directory")
    rules = IgnoreRules.from_file(src / IGNORE_FILE)
    paths = _git_paths(src)
    if paths is None:
        paths = list(_walk(src, "", rules))
    root = str(src)
    out = []
    for path in paths:
        if _never_sent(path) or rules.ignored(path):
            continue
        entry = _local_entry(root, path)
        if entry is None:  # tracked but deleted, or a gitlink: walk a submodule's files
            if (src / path).is_dir() and not (src / path).is_symlink():
                out.extend(e for p in _walk(src, path, rules) if (e := _local_entry(root, p)))
            continue
        out.append(entry)
    return sorted(out, key=lambda e: e.path)


def _never_sent(path: str) -> bool:
    return ".git" in path.split("/") or path in (MANIFEST, MANIFEST + ".tmp")


def _git_paths(src: Path) -> list[str] | None:
    """git's list of tracked + untracked-not-ignored files under src; None outside git."""
    if shutil.which("git") is None:
        return None
    listed = subprocess.run(
        ["git", "-C", str(src), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
    )
    if listed.returncode != 0:
        err = listed.stderr.decode(errors="replace").strip()
        if "not a git repository" in err or "outside repository" in err:
            return None
        raise SyncSourceError(src, f"`git ls-files` failed: {err}")
    names = listed.stdout.decode(FS_ENCODING, FS_ERRORS).split("\0")
    return list(dict.fromkeys(n for n in names if n))  # a conflicted file is listed per stage


def _walk(src: Path, rel: str, rules: IgnoreRules) -> Iterator[str]:
    """Every file and symlink under src/rel, never following links, pruning ignored dirs."""
    try:
        entries = list(os.scandir(src / rel if rel else src))
    except OSError as exc:
        raise SyncSourceError(src / rel, f"cannot list: {exc}") from exc
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        if entry.name == ".git":
            continue
        if entry.is_dir(follow_symlinks=False):
            if not rules.dir_ignored(path):
                yield from _walk(src, path, rules)
        elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
            yield path


def _local_entry(root: str, path: str) -> LocalFile | None:
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SyncSourceError(full, f"cannot stat: {exc}") from exc
    mtime = st.st_mtime_ns // 1_000_000_000
    if stat.S_ISLNK(st.st_mode):
        return LocalFile(path, 0, mtime, 0o777, os.readlink(full))
    if stat.S_ISREG(st.st_mode):
        return LocalFile(path, st.st_size, mtime, stat.S_IMODE(st.st_mode))
    return None
