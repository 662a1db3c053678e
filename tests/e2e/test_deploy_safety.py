"""deploy's promises: teardown nothing can stop (closed pipes, SIGHUP, SIGPIPE, a failed pull),
refusals before anything is rented, the user's stack selection left alone, and a quiet output.
Real `inv`, real `pulumi`, vastsim's ledger, real sshd."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim
from workflow.errors import TeardownError
from workflow.pulumi import Stack
from workflow.pulumi_env import ROOT
from workflow.teardown import DONE_LINE, teardown

pytestmark = pytest.mark.e2e

START_TIMEOUT_S = 120
EXIT_TIMEOUT_S = 120


def _start_sleeping_deploy(inv: Inv, app: Path, ssh_key: Path, job: str,
                           stderr: Path) -> subprocess.Popen[bytes]:
    """`inv deploy -- sleep 120 | <a reader>`: stdout a pipe this test reads or closes."""
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    return subprocess.Popen(
        inv.argv("deploy", "--image", "img", "--src", str(app), "--job", job,
                 "--ssh-key", str(ssh_key), "--", "sleep", "120"),
        env=inv.env, stdout=subprocess.PIPE, stderr=stderr.open("wb"),
    )


def _wait_for_task(proc: subprocess.Popen[bytes], sim: VastSim, stderr: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not any((Path(i["root"]) / "work" / "sleeping").exists()
                  for i in sim.internals() if i.get("root")):
        assert time.monotonic() < deadline, "the task never started"
        assert proc.poll() is None, stderr.read_text()
        time.sleep(0.2)


def _assert_torn_down(inv: Inv, sim: VastSim, proc: subprocess.Popen[bytes], job: str,
                      stderr: Path) -> None:
    assert proc.wait(timeout=EXIT_TIMEOUT_S) != 0
    assert sim.billing_now() == [], stderr.read_text()
    assert len(sim.ledger()["instances"]) == 1
    assert not [s for s in inv.stacks() if job in s], "the job's stack was left behind"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
def test_a_signal_behind_a_closed_pipe_still_tears_down(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, tmp_path: Path, sig: signal.Signals
):
    """`inv deploy ... | tee log`, then Ctrl-C: tee dies too, and every print of the teardown
    would hit a closed pipe. SIGHUP: the terminal went away."""
    job = f"pipe-{sig.name.lower()}"
    err = tmp_path / "stderr"
    proc = _start_sleeping_deploy(inv, app, ssh_key, job, err)
    _wait_for_task(proc, vastsim, err)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone
    proc.send_signal(sig)
    _assert_torn_down(inv, vastsim, proc, job, err)
    assert "Traceback" not in err.read_text()


def test_more_signals_during_teardown_do_not_stop_it(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, tmp_path: Path
):
    """Ctrl-C behind a closed pipe, then SIGPIPE, SIGHUP, SIGTERM and SIGINT again while the
    teardown runs: each is noted (nowhere: stdout is closed) and ignored."""
    err = tmp_path / "stderr"
    proc = _start_sleeping_deploy(inv, app, ssh_key, "storm", err)
    _wait_for_task(proc, vastsim, err)
    assert proc.stdout is not None
    proc.stdout.close()
    proc.send_signal(signal.SIGINT)
    storm = (signal.SIGPIPE, signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
    deadline = time.monotonic() + 6
    while proc.poll() is None and time.monotonic() < deadline:
        for sig in storm:
            if proc.poll() is None:
                os.kill(proc.pid, sig)
            time.sleep(0.15)
    _assert_torn_down(inv, vastsim, proc, "storm", err)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGPIPE])
def test_sighup_and_sigpipe_with_the_terminal_still_there(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, tmp_path: Path, sig: signal.Signals
):
    """SIGHUP stops the job and tears down (its default would kill us on the spot, billing);
    SIGPIPE alone stops nothing: the job is interrupted afterwards, and tears down."""
    err = tmp_path / "stderr"
    proc = _start_sleeping_deploy(inv, app, ssh_key, f"open-{sig.name.lower()}", err)
    _wait_for_task(proc, vastsim, err)
    proc.send_signal(sig)
    if sig == signal.SIGPIPE:
        time.sleep(1)
        assert proc.poll() is None, "SIGPIPE killed deploy"
        proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _assert_torn_down(inv, vastsim, proc, f"open-{sig.name.lower()}", err)
    assert "nothing of this job bills any more" in out


def test_a_failed_pull_still_tears_down_and_says_what_is_lost(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    base = inv.new_stack(ssh_key)
    inv.pulumi(base, "config", "set", "vast-gpu:workDir", "/work/never-made")
    proc = inv("deploy", "--base", base, "--src", str(app), "--job", "pf", "--", "write", "a",
               check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "pull of /work/never-made broke off" in out and "are lost" in out
    assert "nothing of this job bills any more" in out
    assert vastsim.billing_now() == [] and len(vastsim.ledger()["instances"]) == 1
    report = (inv.project / "work_remote" / "pf" / "report.json").read_text()
    assert '"outcome": "pull failed: ' in report


def _tasks_file(app: Path, text: str) -> Path:
    path = app / "jobs.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("case", "says"), [
    ("empty tasks", "holds no task (only blank and # lines)"),
    ("job ../../x", "one folder name under work_remote/"),
    ("job /abs/path", "one folder name under work_remote/"),
    ("missing src", "does not exist"),
    ("unreadable key", "cannot read the private key"),
    ("no image", "pass --image IMAGE"),
    ("no passphrase", "needs your own passphrase"),
    ("no base", "no such stack"),
])
def test_deploy_refuses_before_anything_is_created(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, tmp_path: Path, case: str, says: str
):
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    args = {"--image": "img", "--src": str(app), "--ssh-key": str(ssh_key), "--job": "ok",
            "--tasks": str(_tasks_file(app, "write a\n"))}
    if case == "empty tasks":
        args["--tasks"] = str(_tasks_file(app, "# only a comment\n\n"))
    elif case.startswith("job "):
        args["--job"] = case.removeprefix("job ")
    elif case == "missing src":
        args["--src"] = str(tmp_path / "not-there")
    elif case == "unreadable key":
        args["--ssh-key"] = str(tmp_path / "no-such-key")
    elif case == "no image":
        del args["--image"]
    elif case == "no passphrase":
        del inv.env["PULUMI_CONFIG_PASSPHRASE"]
    else:
        args["--base"] = "never-made"
    proc = inv("deploy", *[w for kv in args.items() for w in kv], check=False)
    assert proc.returncode == 1
    assert says in proc.stderr, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert vastsim.ledger()["instances"] == []
    assert inv.stacks() == []  # not even a stack was created
    assert not (inv.project / "work_remote").exists()


def test_deploy_is_quiet_keeps_the_selection_and_verbose_shows_pulumi(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    mine = inv.new_stack(ssh_key)
    inv.pulumi(mine, "stack", "select", mine, on_stack=False)
    base = ["--base", mine, "--src", str(app), "--ssh-key", str(ssh_key)]
    quiet = inv("deploy", *base, "--job", "q", "--", "write", "q").stdout
    assert inv.selected() == mine  # deploy made and removed a stack; yours stays selected
    assert "vast-gpu: rented offer" in quiet and "nothing of this job bills any more" in quiet
    assert "Updating (" not in quiet and "pulumi stack rm" not in quiet, quiet
    assert len(quiet.splitlines()) < 45, quiet
    loud = inv("deploy", *base, "--job", "v", "--verbose", "--", "write", "v").stdout
    assert "Updating (" in loud and "Resources:" in loud
    assert inv.selected() == mine
    assert vastsim.billing_now() == []


def test_deploy_shell_without_tasks_keeps_with_tasks_tears_down(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    common = ["--image", "img", "--src", str(app), "--ssh-key", str(ssh_key), "--shell"]
    alone = inv("deploy", *common, "--job", "sh1", stdin="pwd\nls /app\nexit\n")
    assert "/app" in alone.stdout.splitlines() and "run-direct" in alone.stdout
    assert "the instance is kept afterwards" in alone.stdout
    [kept] = vastsim.billing_now()
    assert f"make vast-destroy ID={kept}" in alone.stdout
    assert "inv down --stack job-sh1" in alone.stdout

    after = inv("deploy", *common, "--job", "sh2", "--", "write", "s", stdin="exit\n")
    assert "the instance is destroyed when it ends (add --keep to keep it)" in after.stdout
    assert "wrote s" in after.stdout and "nothing of this job bills any more" in after.stdout
    assert vastsim.billing_now() == [kept]
    inv("down", "--instance", str(kept))
    assert vastsim.billing_now() == [] and inv.stacks() == []


def _broken_program(inv: Inv, tmp_path: Path) -> Path:
    """The same project and backend, but its Python runtime is gone: `pulumi destroy` cannot
    load the provider and fails, as it would with a broken checkout or virtualenv."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Pulumi.yaml").write_text(
        (inv.project / "Pulumi.yaml").read_text().replace(str(ROOT / ".venv"),
                                                          str(tmp_path / "no-venv")))
    shutil.copy(inv.project / "__main__.py", broken / "__main__.py")
    return broken


def test_teardown_deletes_through_the_api_when_pulumi_destroy_fails(
    inv: Inv, ssh_key: Path, vastsim: VastSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    name = inv.new_stack(ssh_key)
    inv("up", "--stack", name)
    [iid] = vastsim.billing_now()
    for var in ("PULUMI_BACKEND_URL", "VAST_URL", "VAST_API_KEY"):  # this process is deploy
        monkeypatch.setenv(var, inv.env[var])
    stack = Stack(name, _broken_program(inv, tmp_path), verbose=False)
    out = io.StringIO()
    teardown(stack, [iid], out)
    said = out.getvalue()
    assert "pulumi destroy failed; deleting the job's instances through the API" in said, said
    assert f"instance {iid} destroyed and verified gone" in said
    assert DONE_LINE in said
    assert vastsim.billing_now() == [] and name not in inv.stacks()


def test_teardown_that_cannot_delete_says_what_may_still_bill(
    inv: Inv, ssh_key: Path, vastsim: VastSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    name = inv.new_stack(ssh_key)
    inv("up", "--stack", name)
    [iid] = vastsim.billing_now()
    monkeypatch.setenv("PULUMI_BACKEND_URL", inv.env["PULUMI_BACKEND_URL"])
    monkeypatch.setenv("VAST_URL", vastsim.url)
    monkeypatch.setenv("VAST_API_KEY", "not-the-key")  # every API call is refused
    with pytest.raises(TeardownError) as err:
        teardown(Stack(name, _broken_program(inv, tmp_path), verbose=False), [iid],
                 io.StringIO())
    assert f"instance(s) {iid} may still bill" in str(err.value)
    assert f"inv down --stack {name}" in str(err.value)
    assert name in inv.stacks()  # kept, so `inv down` can finish the job
    assert vastsim.billing_now() == [iid]
    inv("down", "--stack", name)
    assert vastsim.billing_now() == []
