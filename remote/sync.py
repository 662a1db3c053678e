"""Upload a source tree to the instance's app dir, sending only what changed.

What is sent is remote/selection.py's: git's view of the tree when ``src`` is in a git work
tree, else every file; minus ``src/.vastignore``; never ``.git/``. Exec bits are kept.
Symlinks are sent as symlinks and never followed when reading, so a link to /etc/passwd
uploads the link, not the file; where a link points is not checked (it is the user's tree,
and the link only resolves on the instance).

How: one remote session lists DEST (``find -printf``: size, mtime, mode, link target; GNU
find, as on vast's images: a find without -printf lists nothing, so everything is sent), reads
the manifest ``DEST/.vast-gpu-sync`` (the paths the last sync sent), then extracts a tar from
its stdin, so a resync costs one session. A file is sent when it is missing remotely or its
size, mtime (whole seconds) or mode differ. A file is deleted remotely only when the manifest
lists it, the listing still shows it (find never descends through a symlink, so no path
through one is deleted), and it is gone locally: what a job wrote into DEST survives, and
nothing outside DEST is touched. The new manifest is the first tar member, written before any
file, so an upload that breaks off leaves it listing every file that may have been sent.
After the upload one more session checks that every file sent is there (an extract that
exits 0 without reading its input must not pass for success). Partial files cannot pass for
complete: tar sets a file's mtime only once its data is written,
and rsync writes into a temporary file and renames it (a killed rsync may leave such a
``.name.XXXXXX`` file behind; it is not in the manifest, so it is left alone).

Transports (``method``): ``tar-paramiko`` (what ``auto`` picks) streams a tar built here over
the paramiko connection already open, in the listing's session; ``tar-ssh`` streams it into
``tar -x`` through the system ``ssh`` client (same key, same pinned known_hosts); ``rsync``
runs rsync over that ssh with ``--files-from`` (no ``--delete``: deletions are ours), and is
what ``auto`` falls back to when the instance has no tar. See choose_method() for the numbers.
The two that run a local program live in remote/uploads.py.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO

from remote import uploads
from remote.errors import SshError, SyncError, SyncSourceError, tail
from remote.listing import FIND_FORMAT
from remote.progress import Progress
from remote.selection import FS_ENCODING, FS_ERRORS, MANIFEST, LocalFile, select_files
from remote.ssh import STALL_TIMEOUT_S, Connection, Target
from remote.syncplan import make_plan, parse_state, render_manifest
from remote.tarwrite import EMPTY_TAR, write_tar
from remote.transfer import SyncResult

LISTING_END = b"\0\0vast-gpu-sync listing end\0"
METHODS = ("auto", "tar", "tar-ssh", "tar-paramiko", "rsync")


# --- what the instance has -------------------------------------------------------------------


def _state_command(dest: str) -> str:
    """List DEST, then extract a tar from stdin there: one session both finds out what the
    instance has and receives what it lacks (each session costs a round trip or more)."""
    d = shlex.quote(dest)
    skip = f"! -path ./{MANIFEST} ! -path ./{MANIFEST}.tmp"
    end = "\\0".join(LISTING_END.decode().split("\0"))
    return (
        f"mkdir -p -- {d} && cd -- {d} || exit 3; "
        "for t in tar rsync; do command -v $t >/dev/null 2>&1 && printf '%s\\0' $t; done; "
        "printf '\\0'; "
        f"find . -mindepth 1 \\( -type f -o -type l \\) {skip} "
        f"-printf {FIND_FORMAT} 2>/dev/null; "
        f"printf '\\0'; cat {MANIFEST} 2>/dev/null; printf '{end}'; "
        f"command -v tar >/dev/null 2>&1 && exec {extract_command()}; cat >/dev/null"
    )


def extract_command() -> str:
    """What unpacks the upload on the instance, in DEST."""
    return "tar -xpf -"


def choose_method(method: str, remote_tools: frozenset[str], local_tools: frozenset[str]) -> str:
    """The transport to use. ``auto`` is tar over the open paramiko session: the fastest in
    bench/sync_bench.py for 10,000 small files (first sync, no change, one change) and for
    300 MB in 30 files, as it needs no new connection; rsync only when the instance has no
    tar. ``tar`` means tar-ssh where an ssh client exists."""
    if method not in METHODS:
        raise ValueError(f"unknown sync method {method!r}; one of {', '.join(METHODS)}")
    if method == "auto":
        rsync_ok = "rsync" in remote_tools and {"rsync", "ssh"} <= local_tools
        return "rsync" if "tar" not in remote_tools and rsync_ok else "tar-paramiko"
    if method == "tar":
        return "tar-ssh" if "ssh" in local_tools else "tar-paramiko"
    return method


def _local_tools() -> frozenset[str]:
    return frozenset(t for t in ("ssh", "rsync") if shutil.which(t))


# --- sync ----------------------------------------------------------------------------------


def sync(conn: Connection, src: Path, dest: str, *, method: str = "auto", progress: bool = True,
         stream: TextIO | None = None) -> SyncResult:
    """Make ``dest`` on the instance hold ``src``'s files; see the module docstring.
    Progress (when there is something to send) goes to ``stream``, stderr by default.

    Sessions: one lists DEST and then extracts a tar from stdin, so a resync with nothing or
    little to send costs one session. Deletions take one more (before any upload, so a file
    that became a directory can take its place), and tar-ssh and rsync their own connection.
    """
    started = time.monotonic()
    if method not in METHODS:
        raise ValueError(f"unknown sync method {method!r}; one of {', '.join(METHODS)}")
    dest = _check_dest(dest)
    src = Path(src)
    if not src.is_dir():
        raise SyncSourceError(src, "not a directory")
    t = conn.target
    session = _Session(conn, _state_command(dest), f"listing {dest}")
    try:
        local = select_files(src)  # while the instance lists DEST
        state = parse_state(session.read_until(LISTING_END))
        plan = make_plan(local, state)
        nbytes = sum(f.size for f in plan.send)
        chosen = choose_method(method, state.tools, _local_tools())
        _check_tools(t, chosen, state.tools, _local_tools())
        manifest = [] if plan.manifest is None else [(MANIFEST, render_manifest(plan.manifest))]
        if plan.delete or "tar" not in state.tools:  # this session cannot take the upload
            session.finish(b"" if "tar" not in state.tools else EMPTY_TAR)
            session = None
            if plan.delete:
                _delete(conn, dest, plan.delete)
            if manifest:
                _write_manifest(conn, dest, manifest[0][1])
                manifest = []
        shown = None
        if plan.send and progress:
            shown = Progress(f"sync {src} -> {t.host}:{dest}", len(plan.send), nbytes,
                             stream or sys.stderr)
        doing = f"uploading {len(plan.send)} files to {dest} ({chosen})"
        try:
            if chosen == "tar-paramiko":
                if session is None:
                    session = _Session(conn, _tar_command(dest), doing)
                session.doing = doing
                write_tar(session.writer(), src, plan.send, shown, extra=manifest)
                session.finish()
                session = None
            else:
                if session is not None:
                    if manifest:
                        write_tar(session.writer(), src, [], None, extra=manifest)
                        session.finish()
                    else:
                        session.finish(EMPTY_TAR)
                    session = None
                if plan.send and chosen == "rsync":
                    uploads.upload_rsync(t, src, dest, plan.send, shown, doing)
                elif plan.send:
                    uploads.upload_tar_ssh(t, _tar_command(dest), src, plan.send, shown, doing)
        finally:
            if shown is not None:
                shown.finish()
        if plan.send:
            _check_arrived(conn, dest, plan.send, doing)
    finally:
        if session is not None:
            session.abandon()
    return SyncResult(chosen, len(plan.send), nbytes, len(plan.delete), plan.unchanged,
                      time.monotonic() - started)


def _check_dest(dest: str) -> str:
    stripped = dest.rstrip("/")
    if not stripped or "\0" in dest:
        raise ValueError(f"refusing to sync into {dest!r}: give a directory such as /app")
    return stripped


def _check_tools(t: Target, method: str, remote: frozenset[str], local: frozenset[str]) -> None:
    needs_remote = "rsync" if method == "rsync" else "tar"
    needs_local = {"rsync": {"rsync", "ssh"}, "tar-ssh": {"ssh"}}.get(method, set())
    if needs_remote not in remote:
        raise SyncError(t.host, t.port, f"sync ({method})",
                        f"the instance has no `{needs_remote}` on its PATH")
    if missing := needs_local - local:
        raise SyncError(t.host, t.port, f"sync ({method})",
                        f"no local `{'`, `'.join(sorted(missing))}` on PATH")


class _Session:
    """One of the sync's remote commands, on the paramiko connection (a ChannelProcess, whose
    timeout bounds every read and write); each failure becomes a SyncError naming what was
    being done."""

    def __init__(self, conn: Connection, command: str, doing: str) -> None:
        self.target = conn.target
        self.doing = doing
        with self._errors():
            self.proc = conn.start(command, timeout=STALL_TIMEOUT_S)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        t = self.target
        try:
            yield
        except SshError as exc:
            raise SyncError(t.host, t.port, self.doing, exc.reason) from exc

    def read_until(self, marker: bytes) -> bytes:
        """stdout up to ``marker`` (which must end it for now), without the marker."""
        with self._errors():
            out = self.proc.read_until(marker)
        if out is None:
            self._fail()
        assert out is not None
        return out

    def read_all(self) -> bytes:
        with self._errors():
            return self.proc.read_all()

    def writer(self) -> IO[bytes]:
        return _ChannelWriter(self)  # type: ignore[return-value]

    def send(self, data: bytes | memoryview) -> None:
        with self._errors():
            self.proc.write(data)

    def finish(self, data: bytes = b"") -> None:
        """Send ``data``, close stdin, wait for the exit; non-zero is an error."""
        if data:
            self.send(data)
        with self._errors():
            self.proc.close_stdin()
            code, _ = self.proc.finish()
        if code != 0:
            self._fail(code)

    def abandon(self) -> None:
        """Release the channel, best effort: on a link that just died closing raises too, and
        that must not replace the SyncError that said what broke (seen in CI)."""
        self.proc.close()

    def _fail(self, code: int | None = None) -> None:
        """stdout ended early, or the command failed: its exit code and the tail of stderr."""
        with self._errors():
            code = self.proc.wait() if code is None else code
        t = self.target
        reason = ("the connection was lost" if code == -1 else f"exited {code}")
        raise SyncError(t.host, t.port, self.doing, f"{reason}: {tail(self.proc.stderr)}")


def _write_manifest(conn: Connection, dest: str, content: bytes) -> None:
    _remote_step(conn, f"writing {dest}/{MANIFEST}",
                 f"cd -- {shlex.quote(dest)} && cat > {MANIFEST}.tmp && "
                 f"mv -f {MANIFEST}.tmp {MANIFEST}", content)


def _remote_step(conn: Connection, doing: str, command: str, stdin: bytes | None) -> None:
    """One short remote command fed ``stdin``; a failure is a SyncError."""
    session = _Session(conn, command, doing)
    try:
        session.finish(stdin or b"")
    finally:
        session.abandon()


def _check_arrived(conn: Connection, dest: str, files: list[LocalFile], doing: str) -> None:
    """Every file sent is there, as a file or link: an extract that exits 0 without reading
    its input (a broken or stand-in tar) must not pass for a sync. One more session."""
    finder = "exec find \"$@\" -maxdepth 0 -printf '%y %p\\0' 2>/dev/null"
    command = f"cd -- {shlex.quote(dest)} && xargs -0 sh -c {shlex.quote(finder)} sh; true"
    names = b"".join(b"./" + f.path.encode(FS_ENCODING, FS_ERRORS) + b"\0" for f in files)
    session = _Session(conn, command, f"checking what arrived in {dest}")
    try:
        session.proc.send(names)  # from a thread: find answers while the names still come
        out = session.read_all()
    finally:
        session.abandon()
    seen = {}
    for record in out.decode(FS_ENCODING, FS_ERRORS).split("\0"):
        kind, _, name = record.partition(" ")
        seen[name.removeprefix("./")] = kind
    missing = [f.path for f in files if seen.get(f.path) != ("l" if f.link is not None else "f")]
    if missing:
        t = conn.target
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        raise SyncError(t.host, t.port, doing,
                        f"{len(files)} files sent, {len(files) - len(missing)} arrived "
                        f"(missing: {shown}); the instance's `{extract_command()}` did not "
                        "unpack them")


def _delete(conn: Connection, dest: str, paths: list[str]) -> None:
    """rm the files (they were in the listing, so no parent is a symlink), then rmdir the
    parents they leave empty; rmdir never removes a directory something else still uses."""
    parents = sorted({p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)},
                     key=lambda d: (-d.count("/"), d))
    rmdir = f"rmdir -- {' '.join(shlex.quote(d) for d in parents)} 2>/dev/null; " if parents \
        else ""
    stdin = "\0".join(paths).encode(FS_ENCODING, FS_ERRORS) + b"\0"
    _remote_step(conn, f"deleting {len(paths)} files gone locally from {dest}",
                 f"cd -- {shlex.quote(dest)} && xargs -0 rm -f -- && {{ {rmdir}true; }}", stdin)


# --- transports ----------------------------------------------------------------------------


def _tar_command(dest: str) -> str:
    d = shlex.quote(dest)
    return f"mkdir -p -- {d} && cd -- {d} && {extract_command()}"


class _ChannelWriter:
    """A write-only file over a _Session, for tarfile's stream mode."""

    def __init__(self, session: _Session) -> None:
        self._session = session

    def write(self, data: bytes) -> int:
        self._session.send(data)
        return len(data)
