"""Bring the instance's work dir home: incremental, never deleting, refusing paths that escape.

A pull lists the remote tree (GNU find, NUL-separated), decides here what is missing or changed
(size or whole-second mtime differ, as rsync decides), fetches only those files as one tar
stream and unpacks it in Python, member by member. Nothing from the instance is trusted: the
listing and every tar member are checked (relative, no `..`, only regular files we asked for,
landing inside local_dir even through local symlinks).

Refusal means skip and warn, not fail: one hostile or odd entry should not cost the other
results of a paid run. That holds for every kind: an unsafe path, a listing record that does
not parse, a name this side cannot make (too long, too deep, no permission). Each refusal is
printed as it happens and kept in PullResult.refused, and the pull ends with one list of what
was skipped and why; a caller that wants a hard stop checks it. Only a local error that is not
about one path (disk full, read-only, I/O error) stops the pull.

A local file is never overwritten unless an earlier pull wrote it and it is unchanged since:
one written or edited here is renamed to `<name>.local` (`.local-2`, ...) and named in
PullResult.kept before the instance's version takes its place (remote/pullrecord.py keeps the
record, `.vast-gpu-pull`, that tells the two apart). So an incremental pull updates what it
brought, and nothing written on this side is lost.

Symlinks are kept as links when their target stays inside the tree (relative, not climbing
out), otherwise refused. Local files are never deleted: files gone from the instance stay, and
a local entry of another kind in the way (a link where the instance has a file, say) is left
alone and reported.

The bytes come through the system `ssh` client when there is one, with the host key pinned to
the known_hosts file Connection keeps; it is started before the listing so its login overlaps
it. paramiko moves every packet through Python and measured about half as fast (bench/
pull_bench.py), so it is the fallback: if the ssh client cannot connect, the same stream comes
over the Connection (both are remote/process.py's RemoteProcess). Over a long round trip
with much to fetch, the files are dealt to a few such streams at once, one ssh client each
(remote/pullstreams.py): one SSH channel's window, not the link, is then the limit; and the
streams are gzipped on the instance, inflated here (remote/inflate.py). Each
stream is unpacked by remote/tarstream.py's TarReader rather than tarfile's stream mode,
whose extra copies made unpacking about 1.7 times slower (measured on a 256 MiB file).
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from remote import openssh, pullrecord
from remote.errors import PullError, SshError, UnsafePathError, tail
from remote.inflate import Inflated, open_stream
from remote.listing import Entry, Stalled, list_command, list_remote
from remote.openssh import OpenSshProcess
from remote.pidfiles import KILL_TIMEOUT_S, RemotePids
from remote.process import RemoteProcess
from remote.progress import Progress
from remote.pullpaths import (
    check_sizes,
    make_links,
    plan_entry,
    refusing,
)
from remote.pullstreams import (
    COMPRESS_MIN_BYTES,
    compresses,
    deal,
    mode_line,
    round_trip,
    stream_count,
    tar_command,
)
from remote.ssh import STALL_TIMEOUT_S, Connection
from remote.tarstream import TarReader
from remote.transfer import PullResult
from remote.unpack import check_member, extract

VANISHED = "listed but not sent: deleted or unreadable on the instance meanwhile?"
SSH_FAILED = 255  # OpenSSH's exit code for its own failures (connect, auth, host key)
TAR_DONE = (0, 1, 2)
"""GNU tar: 0 fine, 1 a file changed while read, 2 some file failed (vanished, unreadable) but
the archive was finished; anything else (ssh's 255, paramiko's -1 for no status) broke off."""


def pull(
    conn: Connection, remote_dir: str = "/work", *, local_dir: Path, via: str = "auto",
    log: TextIO = sys.stderr, tty: bool | None = None, stall_s: float = STALL_TIMEOUT_S,
    streams: int | None = None, compress: bool | None = None,
) -> PullResult:
    """Copy remote_dir's contents into local_dir (created if missing). `via`: "auto" (system
    ssh, else paramiko), "ssh" or "paramiko". `streams`: how many ssh-client streams at most
    (None: as the round trip and the bytes call for, remote/pullstreams.py); `compress`: gzip
    on the instance (None: over a long round trip only, the same module). A listing or
    stream that sends nothing for stall_s is a PullError, and its remote process group is
    killed."""
    if via not in ("auto", "ssh", "paramiko"):
        raise ValueError(f"via must be 'auto', 'ssh' or 'paramiko', got {via!r}")
    if streams is not None and streams < 1:
        raise ValueError(f"streams must be at least 1, got {streams}")
    return _Pull(conn, remote_dir, local_dir, log, tty, stall_s, streams, compress).run(via)


class _Pull:
    def __init__(
        self, conn: Connection, remote_dir: str, local_dir: Path, log: TextIO, tty: bool | None,
        stall_s: float, streams: int | None, compress: bool | None,
    ) -> None:
        self.conn = conn
        self.stall_s = stall_s
        self.streams = streams
        self.compress = compress
        self.lock = threading.Lock()
        """Guards what the streams of a parallel pull share: the result, the record, the log."""
        self.pids = RemotePids(conn, "pull")
        """The pid files the remote tar and find write, so a stalled one can be killed."""
        self.remote_dir = remote_dir
        local_dir.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(local_dir))
        self.log = log
        self.tty = tty
        self.result = PullResult(local_dir)
        self.same_links: list[str] = []
        self.sent: dict[str, int] = {}
        """Size of each file as the stream sent it: what the size check holds files to."""
        self.record = pullrecord.load(self.root)
        self.record_was = dict(self.record)
        self.foreign: set[str] = set()
        """Files to fetch whose local file the pull did not write: kept aside, not replaced."""

    def warn(self, text: str) -> None:
        self.log.write(f"warning: pull: {text}\n")
        self.log.flush()

    def refuse(self, path: str, reason: str) -> None:
        with self.lock:
            self.result.refused.append((path, reason))
            self.warn(f"refusing {path!r}: {reason}")

    def tracked(self, command: str, what: str) -> str:
        return self.pids.tracked(command, what)

    def kill_remote(self, what: str) -> None:
        """After a stall: kill the remote command's process group."""
        self.pids.kill(what, self.warn)

    def error(self, reason: str) -> PullError:
        return PullError(self.conn.target.host, self.conn.target.port, self.remote_dir, reason)

    def run(self, via: str) -> PullResult:
        start = time.monotonic()
        early: RemoteProcess | None = None
        if via == "ssh" or (via == "auto" and shutil.which(openssh.SSH_PROGRAM) is not None):
            self.conn.open()  # pins the host key before the ssh client reads known_hosts
            early = OpenSshProcess(self.conn.target,
                                   self.tracked(tar_command(self.remote_dir), "tar"))
        try:
            try:
                wanted, links = self.plan()
                if wanted:
                    source, early = early, None
                    self.fetch_all(wanted, via, source)
                    problems = check_sizes(self.root, self.sent)
                    if problems:
                        raise self.error("size check failed: " + "; ".join(problems))
            finally:
                if early is not None:  # nothing to fetch, or the listing failed
                    early.stop(0)
            self.make_links(links)
        finally:
            if self.record != self.record_was:
                try:
                    pullrecord.save(self.root, self.record)
                except OSError as exc:  # only costs kept copies next time
                    self.warn(f"cannot write {pullrecord.RECORD_NAME}: {exc.strerror or exc}")
            self.say_skipped()
        self.result.seconds = time.monotonic() - start
        return self.result

    def say_skipped(self) -> None:
        """The pull's last word: every path skipped and why, in one list (each was also
        warned about as it happened)."""
        skipped = [*self.result.refused, *((rel, VANISHED) for rel in self.result.vanished)]
        if skipped:
            self.log.write(f"pull: skipped {len(skipped)} path(s):\n"
                           + "".join(f"  {path}: {why}\n" for path, why in skipped))
            self.log.flush()

    def make_links(self, links: list[Entry]) -> None:
        self.result.links = make_links(self.root, links, self.same_links, self.refuse)

    def plan(self) -> tuple[dict[str, Entry], list[Entry]]:
        """Files to fetch and links to make; directories are made here, refusals reported."""
        wanted: dict[str, Entry] = {}
        links: list[Entry] = []
        try:
            entries, bad = list_remote(self.conn, self.remote_dir, warn=self.warn,
                                       command=self.tracked(list_command(self.remote_dir), "find"),
                                       stall_s=self.stall_s)
        except Stalled:
            self.kill_remote("find")
            raise self.error(f"the listing stalled: nothing for {self.stall_s:.0f} s; its "
                             "remote find was killed") from None
        for record, reason in bad:
            self.refuse(record, reason)
        for entry in entries:
            try:
                if entry.rel == pullrecord.RECORD_NAME:
                    raise UnsafePathError(entry.rel, "the name of the pull's own record here")
                with refusing(entry.rel):
                    action = plan_entry(self.root, entry)
                    if action == "fetch" and self.is_foreign(entry.rel):
                        self.foreign.add(entry.rel)
            except UnsafePathError as exc:
                self.refuse(exc.path, exc.reason)
                continue
            if action == "fetch":
                wanted[entry.rel] = entry
            elif action == "link":
                links.append(entry)
            elif action == "same":
                self.result.unchanged += 1
                if entry.kind == "f":  # equal to the instance's: the pull's to replace later
                    self.record[entry.rel] = (entry.size, int(entry.mtime))
                if entry.kind == "l":
                    self.same_links.append(entry.rel)
        return wanted, links

    def is_foreign(self, rel: str) -> bool:
        """A local file is there that the pull did not leave (or that was changed since)."""
        try:
            st = (self.root / rel).lstat()
        except FileNotFoundError:
            return False
        return self.record.get(rel) != pullrecord.stamp(st)

    def fetch_all(self, wanted: dict[str, Entry], via: str, early: RemoteProcess | None) -> None:
        """Through the ssh client started early, if any; through paramiko if that fails."""
        total = sum(e.size for e in wanted.values())
        progress = Progress("pull", len(wanted), total, self.log, tty=self.tty)
        try:
            if early is not None:
                try:
                    self.result.via = "ssh"
                    try:
                        groups = deal(wanted, self.use_link(wanted))
                    except BaseException:  # the round trip could not be timed: end the client
                        early.stop(0)
                        raise
                    self.result.streams = len(groups)
                    if len(groups) == 1:
                        self.fetch(wanted, progress, early, ssh=True)
                    else:
                        self.fetch_parallel(groups, progress, early)
                    return
                except _SshClientFailed as exc:
                    if via == "ssh":
                        raise self.error(f"the ssh client failed: {exc}") from exc
                    self.log.write(f"note: pull: system ssh failed ({exc}); using paramiko\n")
            self.result.via = "paramiko"
            self.result.streams = 1
            rest = {r: e for r, e in wanted.items() if r not in self.sent}
            if self.compress is None:
                self.use_link(rest)
            try:  # the link that broke the ssh client's stream may have broken this one too
                command = self.tracked(tar_command(self.remote_dir), "tar")
                source = self.conn.start(command)
            except SshError as exc:
                raise self.error(f"the stream could not be restarted ({exc.reason})") from exc
            self.fetch(rest, progress, source, ssh=False)
        finally:
            progress.finish()

    def use_link(self, wanted: Mapping[str, Entry]) -> int:
        """The streams to open, as asked or as the round trip and the bytes call for; settles
        whether to compress too. The round trip is timed only when the answer depends on it
        (more than one stream's worth of bytes, or enough to compress, left to us)."""
        sizes = [e.size for e in wanted.values()]
        rtt: float | None = None
        many = self.streams is None and stream_count(sizes, float("inf")) > 1
        if many or (self.compress is None and sum(sizes) >= COMPRESS_MIN_BYTES):
            rtt = round_trip(self.conn)
        if self.compress is None:
            self.compress = compresses(rtt)
        return self.streams if self.streams is not None else stream_count(sizes, rtt)

    def fetch_parallel(
        self, groups: list[dict[str, Entry]], progress: Progress, early: RemoteProcess,
    ) -> None:
        """A stream per group, each its own ssh client (the early one carries the first), all
        read at once; the first failure is raised once every stream has ended."""
        sources: list[RemoteProcess] = [early]
        failures: list[BaseException | None] = [None] * len(groups)

        def carry(i: int) -> None:
            try:
                self.fetch(groups[i], progress, sources[i], ssh=True, what=f"tar{i or ''}")
            except BaseException as exc:  # raised in the caller's thread below
                failures[i] = exc

        workers = []
        try:
            for i in range(1, len(groups)):
                sources.append(OpenSshProcess(self.conn.target,
                                         self.tracked(tar_command(self.remote_dir), f"tar{i}")))
            for i in range(len(groups)):
                workers.append(threading.Thread(target=carry, args=(i,), daemon=True))
                workers[-1].start()
            for worker in workers:
                worker.join()
        except BaseException:  # Ctrl-C: end every stream, then let the threads see it
            for source in sources:
                source.stop(0)
            for worker in workers:
                worker.join(KILL_TIMEOUT_S)
            raise
        raised = [exc for exc in failures if exc is not None]
        raised.sort(key=lambda exc: isinstance(exc, _SshClientFailed))  # a pull error first
        if raised:
            raise raised[0]

    def fetch(
        self, wanted: dict[str, Entry], progress: Progress, source: RemoteProcess, *, ssh: bool,
        what: str = "tar",
    ) -> None:
        """One tar stream for `wanted`; each member checked, then written into place. `what`
        names its remote pid file."""
        source.send(mode_line(bool(self.compress))
                    + b"".join(os.fsencode("./" + rel) + b"\0" for rel in wanted))
        source.watch_for_stall(self.stall_s)
        got_any = False
        broken: BaseException | None = None
        try:
            stream = open_stream(source.stdout)
            if isinstance(stream, Inflated):
                self.result.compressed = True
            archive = TarReader(stream)  # type: ignore[arg-type]
            for member in archive:
                try:
                    rel = check_member(member, wanted)
                    if rel in self.sent:
                        raise UnsafePathError(rel, "sent twice in the stream")
                    kept = extract(archive, member, self.root, rel, progress,
                                    keep=rel in self.foreign)
                    if kept is not None:
                        self.keep(rel, kept)
                except UnsafePathError as exc:
                    self.refuse(exc.path, exc.reason)
                    continue
                got_any = True
                self.note_sent(rel, member, wanted[rel])
        except (tarfile.TarError, EOFError, SshError) as exc:
            broken = exc
        except BaseException:  # Ctrl-C, a local disk error: end the stream now
            source.stop(0)
            raise
        code, err = source.stop() if broken else source.finish()
        if source.stalled:
            self.kill_remote(what)
            raise self.error(f"the stream stalled: nothing for {self.stall_s:.0f} s, "
                             f"{len(self.sent)} of {len(wanted)} file(s) fetched; the remote tar "
                             "was killed")
        if ssh and code == SSH_FAILED and not got_any:
            raise _SshClientFailed(tail(err))
        if broken is not None or code not in TAR_DONE:
            why = f"{type(broken).__name__}: {broken}; " if broken else ""
            raise self.error(f"the stream broke off ({why}{'ssh' if ssh else 'tar'} exited "
                             f"{code}: {tail(err)})") from broken
        refused = {path for path, _why in self.result.refused}
        missing = [rel for rel in wanted if rel not in self.sent and rel not in refused]
        self.result.vanished.extend(missing)
        if missing:
            self.warn(f"{len(missing)} listed file(s) not sent, deleted or unreadable on the "
                      f"instance meanwhile? (tar exited {code}: {tail(err)})")

    def keep(self, rel: str, kept: str) -> None:
        with self.lock:
            self.result.kept.append((rel, kept))
            self.log.write(f"note: pull: kept your {rel} as {kept}: the pull did not write it, "
                           "and the instance's version now has its name\n")

    def note_sent(self, rel: str, member: tarfile.TarInfo, entry: Entry) -> None:
        with self.lock:
            self.record[rel] = (member.size, int(member.mtime))
            self.sent[rel] = member.size
            self.result.fetched.append(rel)
            self.result.nbytes += member.size
            if member.size != entry.size:
                self.result.changed.append(rel)
        if member.size != entry.size:
            self.warn(f"{rel} changed on the instance during the pull (listed {entry.size} "
                      f"bytes, sent {member.size}); kept as sent, a rerun fetches it again")


class _SshClientFailed(Exception):
    """The system ssh client could not get the stream going: use paramiko instead."""
