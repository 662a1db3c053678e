"""`inv run --detach`, `inv status`, `inv attach`, `inv run --resume` end to end: real `inv`,
real `pulumi`, vastsim, real sshd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e


def test_detach_status_attach_resume(inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    inv("sync", "--stack", stack, "--src", str(app))
    tasks = app / "jobs.txt"
    tasks.write_text("write alpha\nsleep 8\nfail\nwrite beta\n")

    started = inv("run", "--stack", stack, "--tasks", str(tasks), "--job", "dj", "--detach")
    assert "started detached" in started.stdout and "inv attach" in started.stdout
    status = inv("status", "--stack", stack).stdout
    assert "batch dj (detached): running, task" in status, status

    attached = inv("attach", "--stack", stack, check=False)  # the stack's latest job: dj
    assert attached.returncode == 1, attached.stdout + attached.stderr  # `fail` failed
    out = attached.stdout
    assert "job dj (the stack's latest job)" in out
    assert "[1/4 write] wrote alpha" in out and "[4/4 write] wrote beta" in out
    assert "[3/4 fail] failing" in out and "3 ok, 1 failed" in out
    logs = inv.project / "work_remote" / "dj" / "logs"
    assert (logs / "01-write.log").read_text() == "wrote alpha\n"
    status = inv("status", "--stack", stack).stdout
    assert "batch dj (detached): done, 4 of 4 tasks ended, 1 failed" in status, status

    tasks.write_text("write alpha\nsleep 8\nfail now\nwrite beta\n")
    refused = inv("run", "--stack", stack, "--tasks", str(tasks), "--job", "dj", "--resume",
                  check=False)
    assert refused.returncode == 1 and "differs from the batch's at task 3" in refused.stderr
    tasks.write_text("write alpha\nsleep 8\nfail\nwrite beta\n")
    (app / "run-direct").write_text((app / "run-direct").read_text().replace("exit 4", "exit 0"))
    inv("sync", "--stack", stack, "--src", str(app))
    resumed = inv("run", "--stack", stack, "--tasks", str(tasks), "--job", "dj", "--resume")
    assert "skipping task(s) 1, 2, 4 (ended with exit 0); running 3" in resumed.stdout
    assert "wrote alpha" not in resumed.stdout and "4 ok, 0 failed" in resumed.stdout
    inv("down", "--stack", stack)


def test_run_pull_each_brings_each_task_home_and_reports_it(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    inv("sync", "--stack", stack, "--src", str(app))
    ran = inv("run", "--stack", stack, "--job", "pe", "--pull-each", "--", "write", "one").stdout
    assert "pull-each after task 1: 1 file(s)" in ran, ran
    home = inv.project / "work_remote" / "pe" / "work" / "out" / "one.txt"
    assert home.read_text() == "one\n"
    report = json.loads((inv.project / "work_remote" / "pe" / "report.json").read_text())
    assert [p["after_task"] for p in report["pulls_each"]] == [1]
    assert report["bytes"]["received"] == report["pulls_each"][0]["bytes"] > 0
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []
