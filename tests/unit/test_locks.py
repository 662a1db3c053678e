"""workflow.locks: pulumi's lock error read back, stale locks told apart, contention retried."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workflow.errors import PulumiError, StackLocked
from workflow.locks import Lock, cancel_command, locked_error, parse_locks, retry_contended

# What pulumi v3.274.1 printed for a second `pulumi up` (postgres backend, test_team.py).
PG_LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
    "to end or delete the lock file with `pulumi cancel`.\n"
    "  postgres://****:****@127.0.0.1:38139/team1/.pulumi/locks/organization/vast-gpu/"
    "local-shared/ae1b771e-51ba-48dc-b9fa-b233c4045fac.json?sslmode=disable: created by "
    "alice@gpu-box (pid 3590) at 2026-12-02T21:39:34Z\n"
)
HERE = socket.gethostname()


def file_locked(*holders: tuple[str, str, int]) -> str:
    lines = [f"  file:///home/a b/.pulumi/locks/organization/vast-gpu/exp/{i}.json: created by "
             f"{user}@{host} (pid {pid}) at 2026-12-02T22:00:00+01:00"
             for i, (user, host, pid) in enumerate(holders)]
    return (f"error: the stack is currently locked by {len(holders)} lock(s). Either wait ...\n"
            + "\n".join(lines))


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_lock_pulumi_names_is_read_back_whole() -> None:
    [lock] = parse_locks(PG_LOCKED) or []
    assert (lock.user, lock.host, lock.pid) == ("alice", "gpu-box", 3590)
    assert lock.since == datetime(2026, 12, 2, 21, 39, 34, tzinfo=UTC)
    assert lock.lock_id == "ae1b771e-51ba-48dc-b9fa-b233c4045fac.json"
    assert lock.describe(datetime(2026, 12, 2, 21, 42, 34, tzinfo=UTC)) == (
        "alice@gpu-box, pid 3590, since 2026-12-02 21:39:34 UTC (3 min ago)")
    two = parse_locks(file_locked(("dom@corp", "h1", 1), ("bob", "h2", 2))) or []
    assert [(x.user, x.host, x.pid) for x in two] == [("dom@corp", "h1", 1), ("bob", "h2", 2)]
    assert two[0].url.startswith("file:///home/a b/")
    assert parse_locks("error: stack 'x' already exists") is None


def test_stale_only_when_made_here_by_a_pulumi_that_is_gone() -> None:
    lock = Lock("u", "root", HERE, dead_pid(), None)
    assert lock.stale()
    with subprocess.Popen(["sleep", "30"]) as other:  # a live pid that is no pulumi: reused
        try:
            assert Lock("u", "root", HERE, other.pid, None).stale()
            assert not Lock("u", "root", "another-host", dead_pid(), None).stale()
        finally:
            other.kill()


def test_a_live_pulumi_holds_its_lock(tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"  # the comm name is what is checked: a process named pulumi
    shutil.copy(shutil.which("sleep") or "/bin/sleep", fake)
    with subprocess.Popen([str(fake), "30"]) as proc:
        try:
            comm = Path(f"/proc/{proc.pid}/comm")
            deadline = time.monotonic() + 5  # until the child has exec'd: before, it is python
            while comm.read_text().strip() != "pulumi" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not Lock("u", "root", HERE, proc.pid, None).stale()
        finally:
            proc.kill()


def test_locked_error_says_who_and_the_exact_cancel(tmp_path: Path) -> None:
    cmd = ["pulumi", "up", "--stack", "exp"]
    live = locked_error(cmd, 255, file_locked(("bob", "other-box", 77)), "exp", tmp_path)
    assert isinstance(live, StackLocked) and isinstance(live, PulumiError) and not live.stale
    text = str(live)
    assert "stack 'exp' is locked: another pulumi command is working on it" in text
    assert "held by bob@other-box, pid 77, since 2026-12-02 22:00:00 UTC+01:00" in text
    assert f"pulumi cancel --yes --stack exp --cwd {tmp_path}" in text
    stale = locked_error(cmd, 255, file_locked(("root", HERE, dead_pid())), "exp", tmp_path)
    assert stale is not None and stale.stale
    assert "no longer runs (killed?)" in str(stale) and "inv sweep" in str(stale)
    assert locked_error(cmd, 1, "error: something else", "exp", tmp_path) is None


def test_cancel_command_needs_no_cwd_in_the_project(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cancel_command("exp", tmp_path) == "pulumi cancel --yes --stack exp"


def _locked_by(*ids: str) -> StackLocked:
    locks = [Lock(f"file:///s/.pulumi/locks/o/p/exp/{i}.json", "bob", "h", 1, None) for i in ids]
    return StackLocked(["pulumi", "up"], 255, "", stack="exp", locks=locks, stale=False,
                       message="locked")


def test_contention_is_retried_until_the_same_lock_shows_twice() -> None:
    pauses: list[float] = []
    met = iter([_locked_by("a"), _locked_by("b")])  # both backed off, then a fresh holder

    def run() -> str:
        exc = next(met, None)
        if exc is not None:
            raise exc
        return "done"

    assert retry_contended(run, lambda _line: None, pauses.append) == "done"
    assert len(pauses) == 2 and all(0.3 <= p <= 1.5 for p in pauses)

    notes: list[str] = []

    def held() -> str:
        raise _locked_by("a")

    with pytest.raises(StackLocked):
        retry_contended(held, notes.append, pauses.append)
    assert len(notes) == 1  # a real holder: given up on the second sight of its lock


def test_a_stale_lock_is_not_retried() -> None:
    stale = StackLocked(["pulumi", "up"], 255, "", stack="exp",
                        locks=[Lock("u/x.json", "r", HERE, 1, None)], stale=True, message="s")
    calls: list[int] = []

    def run() -> None:
        calls.append(1)
        raise stale

    with pytest.raises(StackLocked):
        retry_contended(run, lambda _line: None, lambda _s: None)
    assert calls == [1]
