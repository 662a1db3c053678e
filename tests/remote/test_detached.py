"""Supervised batches (remote/supervisor.py, remote/detached.py) on vastsim's real sshd: they
outlive the connection, a cut stream resumes exactly once, resume skips what succeeded, Ctrl-C
leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from remote import supervisor
from remote.batch import Task, parse_tasks
from remote.detached import SILENCE_S, attach
from remote.errors import AttachLost, BatchRunning, InstanceLost, TasksChanged
from remote.ssh import Connection, Target
from remote.supervisor import plan_resume, start_batch
from tests.remote.test_batch import (
    RUN_DIRECT,
    StampedWriter,
    remote_processes,
    upload_run_direct,
)
from tests.remote.test_watchdog import RUN_DIRECT as WATCHDOG_RUN_DIRECT
from tests.remote.test_watchdog import (  # noqa: F401 - watched is a fixture
    SLACK_S,
    stays_billing,
    wait_destroyed,
    watchdog_log,
    watched,
)
from vastsim.testing import VastSim

ROOT = Path(__file__).resolve().parents[2]

COUNTING = RUN_DIRECT.replace(
    "  *) echo", '  count) i=0; while [ $i -lt "$1" ]; do i=$((i+1)); echo "line $i"; '
                 'sleep "$2"; done ;;\n  *) echo')


def remote_log(conn: Connection, job: str, name: str) -> bytes:
    path = f"{supervisor.batch_dir(job)}/{name}"
    proc = conn.start(f"cat {path}")
    try:
        code, data, _ = proc.capture()
    finally:
        proc.close()
    assert code == 0
    return data


def wait_state(conn: Connection, job: str, status: str, within: float) -> supervisor.BatchState:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = supervisor.read_state(conn, job)
        if state.status == status:
            return state
        time.sleep(0.2)
    raise AssertionError(f"batch {job} not {status} within {within} s: {state}")


@pytest.mark.sshd
def test_a_detached_batch_finishes_with_the_local_side_gone(
    target: Target, tmp_path: Path
) -> None:
    tasks = parse_tasks("args one 'two words'\nfail now\nslow\n")
    with Connection(target) as conn:
        upload_run_direct(conn)
        start_batch(conn, "j1", tasks, app_dir="/app", logs_dir=tmp_path / "logs",
                    detached=True)
        with pytest.raises(BatchRunning, match="still running"):
            start_batch(conn, "j1", tasks, app_dir="/app", logs_dir=tmp_path / "x",
                        detached=True)
        title = supervisor.hold_title("j1")
        assert title in conn.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    # nobody local is connected while it runs
    with Connection(target) as conn:
        state = wait_state(conn, "j1", "done", 20)
        assert [(r.index, r.exit_code) for r in state.records.values()] == [
            (1, 0), (2, 3), (3, 0)]
        assert state.mode == "detached" and state.ended is not None
        out = StampedWriter()
        batch = attach(conn, "j1", tmp_path / "logs", out=out)
        text = out.text()
        assert [r.exit_code for r in batch.results] == [0, 3, 0]
        assert "[1/3 args] arg=[two words]\n" in text
        assert "[2/3 fail] bad thing\n" in text and "warning: task 2/3 failed (exit 3)" in text
        assert "[3/3 slow] second\n" in text and "2 ok, 1 failed" in text
        for name in supervisor.log_names(tasks):
            assert (tmp_path / "logs" / name).read_bytes() == remote_log(conn, "j1", name)
        # attaching again repeats nothing: the local logs are the bookmark
        again = StampedWriter()
        attach(conn, "j1", tmp_path / "logs", out=again)
        assert "arg=" not in again.text() and "2 ok, 1 failed" in again.text()
        assert "j1" not in conn.run("ls /work").stdout  # never where a pull would look


def cut_when(out: StampedWriter, needle: str, cut, at: list[float] | None = None
             ) -> threading.Thread:
    """A thread that cuts once `needle` was shown; the time of the cut goes to `at`."""
    def run() -> None:
        assert out.wait_for(needle, timeout=30), out.text()
        if at is not None:
            at.append(time.monotonic())
        cut()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def signal_session(target: Target, sig: str) -> None:
    """Signal the sshd process that serves the follow stream: KILL ends the link on the far
    side; STOP leaves it open and silent, as a dead network path does."""
    with Connection(target) as other:
        other.run("for p in $(pgrep -f '[v]ast-gpu follow'); do "
                  f"kill -{sig} $(ps -o ppid= -p $p); done")


CUTS = {
    "close the transport": lambda conn, target: conn.client.get_transport().close(),
    "kill the sshd session": lambda conn, target: signal_session(target, "KILL"),
    "freeze the sshd session": lambda conn, target: signal_session(target, "STOP"),
}


@pytest.mark.parametrize("how", list(CUTS))
@pytest.mark.sshd
def test_a_cut_stream_resumes_exactly_once(target: Target, tmp_path: Path, how: str) -> None:
    tasks = [Task("count 30 0.1", 1), Task("plain after", 2)]
    out = StampedWriter()
    cut_at: list[float] = []
    with Connection(target) as conn:
        upload_run_direct(conn, COUNTING)
        start_batch(conn, "cut", tasks, app_dir="/app", logs_dir=tmp_path / "logs",
                    detached=False)
        cutter = cut_when(out, "line 8\n", lambda: CUTS[how](conn, target), cut_at)
        batch = attach(conn, "cut", tmp_path / "logs", out=out)
        cutter.join()
        assert batch.ok
        names = supervisor.log_names(tasks)
        local = (tmp_path / "logs" / names[0]).read_bytes()
        assert local == remote_log(conn, "cut", names[0])
        assert local == b"".join(b"line %d\n" % i for i in range(1, 31))
    text = out.text()
    shown = re.findall(r"^\[1/2 count\] (line \d+)$", text, re.M)
    assert shown == [f"line {i}" for i in range(1, 31)]  # each once, in order
    [took] = re.findall(r"reconnected after ([\d.]+) s", text)
    resumed = out.first("reconnected after") - cut_at[0]
    print(f"\n{how}: cut to stream resumed {resumed:.2f} s (reconnect itself {took} s)")
    assert float(took) < 5
    assert resumed < (SILENCE_S + 5 if how.startswith("freeze") else 5)
    assert "[2/2 plain] ran plain after" in text


@pytest.mark.sshd
def test_an_attached_batch_keeps_its_lease_across_a_reconnect(
    watched, vastsim: VastSim, tmp_path: Path  # noqa: F811 - the fixture imported above
) -> None:
    """leaseTimeout 3 s, a 6 s task, the connection cut at 1 s: the renewals go on over the
    new connection, so nothing fires."""
    instance_id, target = watched(0, 0, 3)
    out = StampedWriter()
    with Connection(target) as conn:
        upload_run_direct(conn, COUNTING)
        start_batch(conn, "leased", [Task("count 60 0.1", 1)], app_dir="/app",
                    logs_dir=tmp_path / "logs", detached=False)
        cutter = cut_when(out, "line 10\n", lambda: conn.client.get_transport().close())
        batch = attach(conn, "leased", tmp_path / "logs", out=out)
        cutter.join()
        assert batch.ok and "reconnected after" in out.text()
        assert "for up to 2 s" in out.text()  # the deadline: half the lease
    time.sleep(1)
    assert instance_id in vastsim.billing_now()
    assert "firing" not in watchdog_log(instance_id)


@pytest.mark.sshd
def test_resume_reruns_only_what_did_not_succeed(target: Target, tmp_path: Path) -> None:
    tasks = parse_tasks("plain a\nfail once\nplain b\n")
    logs = tmp_path / "logs"
    with Connection(target) as conn:
        upload_run_direct(conn)
        start_batch(conn, "r", tasks, app_dir="/app", logs_dir=logs, detached=True)
        first = attach(conn, "r", logs, out=StampedWriter())
        assert [r.exit_code for r in first.results] == [0, 3, 0]
        kept = (logs / "01-plain.log").stat().st_mtime_ns
        with pytest.raises(TasksChanged) as err:
            plan_resume(conn, "r", parse_tasks("plain a\nfail twice\nplain b\n"))
        assert err.value.index == 2 and "'fail twice'" in str(err.value)
        with pytest.raises(TasksChanged, match="at task 4"):
            plan_resume(conn, "r", [*tasks, Task("plain c", 4)])
        upload_run_direct(conn, RUN_DIRECT.replace("exit 3", "exit 0"))  # the fix
        plan = plan_resume(conn, "r", tasks)
        assert plan.run == [2] and [r.index for r in plan.keep] == [1, 3]
        start_batch(conn, "r", tasks, app_dir="/app", logs_dir=logs, detached=True,
                    run=plan.run, keep=plan.keep)
        out = StampedWriter()
        second = attach(conn, "r", logs, out=out)
        assert [r.exit_code for r in second.results] == [0, 0, 0] and second.ok
        assert "ran plain" not in out.text() and "[2/3 fail] about to fail" in out.text()
        assert (logs / "01-plain.log").stat().st_mtime_ns == kept
        assert remote_log(conn, "r", "02-fail.log") == (logs / "02-fail.log").read_bytes()
        assert remote_log(conn, "r", "01-plain.log") == b"ran plain a\n"


DRIVER = """
import sys
from pathlib import Path
from remote.batch import Task
from remote.detached import SILENCE_S, attach
from remote.supervisor import start_batch
from remote.ssh import Connection, Target
host, port, key, known, logs, mode = sys.argv[1:]
tasks = [Task("hang", 1), Task("plain never", 2)]
with Connection(Target(host, int(port), Path(key), Path(known))) as conn:
    start_batch(conn, "cc", tasks, app_dir="/app", logs_dir=Path(logs),
                detached=mode == "detached")
    attach(conn, "cc", Path(logs))
"""


def interrupt_driver(target: Target, logs: Path, mode: str) -> str:
    """Run DRIVER until the task says "hanging", then SIGINT it; its whole output."""
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, target.host, str(target.port), str(target.key_path),
         str(target.known_hosts), str(logs), mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )
    assert driver.stdout is not None
    seen = []
    try:
        for line in driver.stdout:
            seen.append(line)
            if "[1/2 hang] hanging" in line:
                break
        assert any("hanging" in line for line in seen), "".join(seen)
        assert "sleep 1000" in remote_processes(target)
        driver.send_signal(signal.SIGINT)
        rest, _ = driver.communicate(timeout=40)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode != 0
    return "".join(seen) + rest


@pytest.mark.sshd
def test_ctrl_c_while_attached_stops_the_remote_tasks(target: Target, tmp_path: Path) -> None:
    with Connection(target) as conn:
        upload_run_direct(conn)
    output = interrupt_driver(target, tmp_path / "logs", "attached")
    assert "KeyboardInterrupt" in output
    assert "interrupted: the remote tasks were stopped" in output
    assert "plain never" not in output.split("interrupted")[0]
    left = remote_processes(target)
    assert "sleep 100" not in left and "run-direct" not in left, left
    assert "supervisor.sh" not in left, left
    with Connection(target) as conn:
        state = supervisor.read_state(conn, "cc")
    assert state.status == "stopped"
    assert [(r.index, r.exit_code) for r in state.records.values()] == [(1, None)]
    assert (tmp_path / "logs" / "01-hang.log").read_text() == "hanging\n"


@pytest.mark.sshd
def test_ctrl_c_while_following_a_detached_batch_leaves_it_running(
    target: Target, tmp_path: Path
) -> None:
    with Connection(target) as conn:
        upload_run_direct(conn)
    output = interrupt_driver(target, tmp_path / "logs", "detached")
    assert "detached: batch cc goes on on the instance" in output
    assert "sleep 1000" in remote_processes(target)
    with Connection(target) as conn:
        assert supervisor.read_state(conn, "cc").current is not None
        supervisor.stop(conn, "cc")  # what stops it for good
        assert wait_state(conn, "cc", "stopped", 10).records[1].exit_code is None
    left = remote_processes(target)
    assert "sleep 100" not in left and "supervisor.sh" not in left, left


@pytest.mark.sshd
def test_past_the_deadline_it_says_the_batch_still_runs_and_how_to_reattach(
    rent, vastsim: VastSim, tmp_path: Path
) -> None:
    instance_id, target = rent()
    out = StampedWriter()
    with Connection(target) as conn:
        upload_run_direct(conn, COUNTING)
        start_batch(conn, "gone", [Task("count 100 0.1", 1)], app_dir="/app",
                    logs_dir=tmp_path / "logs", detached=False)
        cutter = cut_when(out, "line 3\n", lambda: vastsim.admin_post(
            f"/instances/{instance_id}/kill", {"status": "offline"}))
        began = time.monotonic()
        with pytest.raises(AttachLost) as err:
            attach(conn, "gone", tmp_path / "logs", out=out, deadline_s=2)
        cutter.join()
    assert time.monotonic() - began < 2 + 15 + 5  # the cut is seen, then 2 s of retries
    message = str(err.value)
    assert "The batch gone is still running" in message
    assert "inv attach --job gone" in message and "no reconnect within" in message
    assert "[1/1 count] line 3" in out.text() and "0 ok, 0 failed, 1 not run" in out.text()


@pytest.mark.sshd
def test_with_a_probe_a_lost_instance_is_said_at_once_with_what_ended(
    rent, vastsim: VastSim, tmp_path: Path
) -> None:
    """The same kill, but the caller can ask the API (workflow/connect.py: lost_probe): no
    reconnect deadline is waited out, and the tasks that ended come with the error."""
    instance_id, target = rent()
    out = StampedWriter()
    asked: list[float] = []

    def probe() -> str | None:
        asked.append(time.monotonic())
        phase = {r["id"]: r["phase"] for r in vastsim.ledger()["instances"]}[instance_id]
        return None if phase == "running" else phase

    tasks = [Task("plain first", 1), Task("count 100 0.1", 2)]
    with Connection(target) as conn:
        upload_run_direct(conn, COUNTING)
        start_batch(conn, "lost", tasks, app_dir="/app", logs_dir=tmp_path / "logs",
                    detached=False)
        cutter = cut_when(out, "line 3\n", lambda: vastsim.admin_post(
            f"/instances/{instance_id}/kill", {"status": "offline"}))
        with pytest.raises(InstanceLost) as err:
            attach(conn, "lost", tmp_path / "logs", out=out, deadline_s=120, probe=probe)
        cutter.join()
    cut = out.first("line 3")
    assert asked[-1] - cut < 15 + 5  # the cut is seen (at worst by silence), then one question
    lost = err.value
    assert (lost.index, lost.total, lost.state) == (2, 2, "offline")
    assert [(r.index, r.exit_code) for r in lost.records] == [(1, 0)]
    assert "lost at task 2 of 2 of job lost: vast.ai says offline" in str(lost)
    assert "reconnecting" not in out.text()


@pytest.mark.sshd
def test_a_detached_batch_holds_the_instance_then_idle_counts(
    watched, vastsim: VastSim, tmp_path: Path  # noqa: F811 - the fixture imported above
) -> None:
    """idleTimeout 2 s, no session open: the instance lives while the 5 s batch runs, and is
    destroyed about 2 s after it ended."""
    instance_id, target = watched(0, 2, 0)
    with Connection(target) as conn:
        conn.run("cat > /app/run-direct && chmod +x /app/run-direct",
                 stdin=WATCHDOG_RUN_DIRECT.encode())
        start_batch(conn, "held", [Task("sleep 5", 1)], app_dir="/app",
                    logs_dir=tmp_path / "logs", detached=True)
    began = time.monotonic()
    stays_billing(vastsim, target, instance_id, 4.5)
    gone = wait_destroyed(vastsim, instance_id, 5 + 2 + SLACK_S + 2)
    assert 5 + 2 - 1 <= gone - began <= 5 + 2 + SLACK_S + 1, gone - began
    log = watchdog_log(instance_id)
    assert "firing: idle for 2s" in log and "lease lapsed" not in log
