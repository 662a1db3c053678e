"""Sync and pull when the link breaks: a connection cut after N bytes (limit_data), reset
(reset_peer) or gone silent then closed (timeout) mid-transfer, through a real Toxiproxy in
front of a vastsim sshd. Each must end in our own error with a message saying to rerun; the
rerun, with the link healthy, must leave every file correct (checksums), nothing half-written
in the target, and nothing outside the target touched."""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.link import Link
from remote import pullrecord
from remote.errors import PullError, RemoteError, SyncError
from remote.pull import pull
from remote.selection import MANIFEST
from remote.ssh import Connection, Target
from remote.sync import sync

pytestmark = [pytest.mark.sshd, pytest.mark.link]

DEST = "/app/proj"
BIG = 256 * 1024
WAIT_S = 15.0
WORK = """
set -e
mkdir -p /work/out/d
head -c 12582912 /dev/urandom > /work/out/big.bin
for i in $(seq 1 30); do head -c 65536 /dev/urandom > /work/out/d/f$i; done
"""


def make_src(src: Path) -> dict[str, str]:
    """24 files of 256 KiB (6 MiB) and 100 small ones, not in git; their sha256s."""
    for i in range(24):
        path = src / f"data/blob{i:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(BIG))
    for i in range(100):
        path = src / f"code/m{i % 4}/f{i:03d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"x = {i}\n" * (i + 1))
    return local_sums(src)


def local_sums(root: Path) -> dict[str, str]:
    """sha256 of every file under root, the pull's own record left out."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != pullrecord.RECORD_NAME}


def remote_sums(conn: Connection, root: str) -> dict[str, str]:
    """sha256 of every file under root, the sync manifest left out."""
    out = conn.run(f"cd {shlex.quote(root)} && find . -type f ! -name {MANIFEST} -print0 "
                   "| xargs -0 -r sha256sum").stdout
    return {line[66:].removeprefix("./"): line[:64] for line in out.splitlines()}


def outside(conn: Connection, dest: str) -> str:
    """Everything under /app and /work but dest: path, size, mtime, mode (not /app itself,
    whose mtime making dest changes)."""
    return conn.run(f"find /app /work -mindepth 1 -path {shlex.quote(dest)} -prune -o "
                    "-printf '%p %s %T@ %m\\n' | sort").stdout


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_thread(fn: Callable[[], object]) -> Callable[[], BaseException | None]:
    """Run fn in a thread; the returned join gives what it raised (None if nothing)."""
    raised: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()

    def join() -> BaseException | None:
        thread.join(WAIT_S * 2)
        assert not thread.is_alive(), "the transfer did not end after the fault"
        return raised[0] if raised else None

    return join


# --- sync ------------------------------------------------------------------------------------


def sync_setup(target: Target) -> str:
    with Connection(target) as direct:
        direct.run("mkdir -p /app/keep && echo keep > /app/keep/x && echo w > /work/w")
        return outside(direct, DEST)


def check_synced(target: Target, want: dict[str, str], before: str) -> None:
    with Connection(target) as direct:
        assert remote_sums(direct, DEST) == want  # every file, and no stray temp file
        assert outside(direct, DEST) == before


@pytest.mark.parametrize("method", ["tar-paramiko", "tar-ssh", "rsync"])
def test_sync_cut_after_n_bytes_is_a_sync_error_and_a_rerun_completes(
    method: str, target: Target, link: Link, via_link: Target, tmp_path: Path,
) -> None:
    want = make_src(tmp_path / "src")
    before = sync_setup(target)
    link.toxic("limit_data", stream="upstream", bytes=1_500_000)
    with pytest.raises(SyncError, match="rerun the sync") as caught, Connection(via_link) as conn:
        sync(conn, tmp_path / "src", DEST, method=method, progress=False)
    assert "Traceback" not in str(caught.value)
    link.clear()
    with Connection(via_link) as conn:
        again = sync(conn, tmp_path / "src", DEST, method=method, progress=False)
    assert again.unchanged > 0, "nothing that got through before the cut was kept"
    assert again.files_sent + again.unchanged == len(want)
    check_synced(target, want, before)


@pytest.mark.parametrize(("kind", "attrs"), [("reset_peer", {"timeout": 0}),
                                             ("timeout", {"timeout": 1000})])
def test_sync_reset_mid_upload_is_a_sync_error_and_a_rerun_completes(
    kind: str, attrs: dict[str, int], target: Target, link: Link, via_link: Target,
    tmp_path: Path,
) -> None:
    want = make_src(tmp_path / "src")
    before = sync_setup(target)
    link.toxic("bandwidth", stream="upstream", rate=1500)  # 6 MiB take about 4 s

    def upload() -> None:
        with Connection(via_link) as conn:
            sync(conn, tmp_path / "src", DEST, progress=False)

    join = in_thread(upload)
    with Connection(target) as direct:
        until(lambda: direct.run(f"find {DEST} -name 'blob*' | wc -l", check=False)
              .stdout.strip() not in ("", "0"), "the first blobs to land")
    link.toxic(kind, stream="upstream", **attrs)
    link.toxic(kind, stream="downstream", **attrs)
    raised = join()
    assert isinstance(raised, SyncError), repr(raised)
    assert "rerun the sync" in str(raised)
    link.clear()
    with Connection(via_link) as conn:
        again = sync(conn, tmp_path / "src", DEST, progress=False)
    assert again.unchanged > 0
    check_synced(target, want, before)


# --- pull ------------------------------------------------------------------------------------


def pull_setup(target: Target, home: Path) -> tuple[dict[str, str], Path]:
    with Connection(target) as direct:
        direct.run(WORK)
        want = remote_sums(direct, "/work/out")
    home.mkdir()
    (home / "mine.txt").write_text("not the instance's\n")
    return want, home / "pulled"


def pull_under_way(via_link: Target, dest: Path, streams: int | None = None,
                   ) -> Callable[[], BaseException | None]:
    """A pull of /work/out started in a thread, once big.bin is partly written: its join."""
    def fetch() -> None:
        with Connection(via_link) as conn:
            pull(conn, "/work/out", local_dir=dest, log=io.StringIO(), streams=streams)

    def big_under_way() -> bool:
        parts = list(dest.glob(".big.bin.*")) if dest.exists() else []
        return any(p.stat().st_size > 1_000_000 for p in parts if p.exists())

    join = in_thread(fetch)
    until(big_under_way, "big.bin to be partly written")
    return join


def check_home(home: Path, dest: Path, want: dict[str, str], *, complete: bool) -> None:
    """No partial file anywhere; what is there is right; nothing else in home changed."""
    assert sorted(p.name for p in home.iterdir()) == ["mine.txt", "pulled"]
    assert (home / "mine.txt").read_text() == "not the instance's\n"
    leftovers = [p for p in dest.rglob("*") if p.name != pullrecord.RECORD_NAME  # its own
                 and (p.name.startswith(".") or "part" in p.name)]
    assert leftovers == [], "partial files left in the target"
    have = local_sums(dest)
    assert have == want if complete else all(want[rel] == s for rel, s in have.items())


def test_pull_cut_after_n_bytes_is_a_pull_error_and_a_rerun_completes(
    target: Target, link: Link, via_link: Target, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    want, dest = pull_setup(target, home)
    link.toxic("limit_data", stream="downstream", bytes=4_000_000)
    with pytest.raises(PullError, match="rerun the pull"), Connection(via_link) as conn:
        pull(conn, "/work/out", local_dir=dest, log=io.StringIO())
    check_home(home, dest, want, complete=False)
    link.clear()
    with Connection(via_link) as conn:
        result = pull(conn, "/work/out", local_dir=dest, log=io.StringIO())
    assert not result.refused
    check_home(home, dest, want, complete=True)


@pytest.mark.parametrize(("kind", "attrs"), [("reset_peer", {"timeout": 0}),
                                             ("timeout", {"timeout": 1000})])
def test_pull_reset_mid_file_is_a_pull_error_and_a_rerun_completes(
    kind: str, attrs: dict[str, int], target: Target, link: Link, via_link: Target,
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    want, dest = pull_setup(target, home)
    link.toxic("bandwidth", stream="downstream", rate=3000)  # 14 MiB take about 5 s

    join = pull_under_way(via_link, dest)
    link.toxic(kind, stream="downstream", **attrs)
    link.toxic(kind, stream="upstream", **attrs)
    raised = join()
    assert isinstance(raised, PullError), repr(raised)
    assert "rerun the pull" in str(raised)
    assert isinstance(raised, RemoteError)
    check_home(home, dest, want, complete=False)
    link.clear()
    with Connection(via_link) as conn:
        pull(conn, "/work/out", local_dir=dest, log=io.StringIO())
    check_home(home, dest, want, complete=True)
