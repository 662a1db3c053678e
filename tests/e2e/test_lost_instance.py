"""`inv deploy` when its instance is lost mid-batch: outbid (a bid stack resumes on a new
instance) or killed (an on-demand stack stops), with pull-each having brought the finished
tasks' results home. Real `inv`, real `pulumi`, vastsim, real sshd; the ledger judges."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e

NAP = '  nap) echo napping; sleep "$2"; echo woke;;\n'


def _nap_app(app: Path) -> Path:
    """The test app with a task that says it started, then sleeps: the moment to strike."""
    script = app / "run-direct"
    script.write_text(script.read_text().replace("  *)", NAP + "  *)"))
    tasks = app / "jobs.txt"
    tasks.write_text("write alpha\nwrite beta\nnap 30\nwrite gamma\n")
    return tasks


def _until(proc: subprocess.Popen[str], text: str, seen: list[str], within: float) -> None:
    """Read deploy's output until a line holds `text` (all lines kept in `seen`)."""
    end = time.monotonic() + within
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"no {text!r} in deploy's output:\n{''.join(seen)}")


def _finish(proc: subprocess.Popen[str], seen: list[str], within: float,
            since: float) -> str:
    """Read the rest of deploy's output; print when the loss was said and when a task next
    ran on another instance, counted from `since` (the strike)."""
    end = time.monotonic() + within
    assert proc.stdout is not None
    marks: dict[str, float] = {}
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if " was outbid at task" in line or " was lost at task" in line:
            marks.setdefault("the loss said", time.monotonic() - since)
        if "[3/4 nap] napping" in line:
            marks.setdefault("task 3 running again on the new instance", time.monotonic() - since)
    proc.wait(timeout=max(1.0, end - time.monotonic()))
    print("".join(f"\n{what}: {at:.1f} s after the strike" for what, at in marks.items()))
    return "".join(seen)


def _strike(inv: Inv, vastsim: VastSim, app: Path, base: str, job: str,
            hit: Callable[[int], object]) -> tuple[str, int, int]:
    """Deploy the nap job; when task 3 runs, `hit(instance_id)`. Output, exit code, the id."""
    proc = inv.start("deploy", "--base", base, "--src", str(app), "--job", job,
                     "--tasks", str(app / "jobs.txt"))
    seen: list[str] = []
    try:
        _until(proc, "[3/4 nap] napping", seen, 240)
        beta = inv.project / "work_remote" / job / "work" / "out" / "beta.txt"
        end = time.monotonic() + 25
        while not beta.exists() and time.monotonic() < end:  # pull-each after task 2
            time.sleep(0.1)
        [first] = vastsim.billing_now()
        hit(first)
        struck = time.monotonic()
        out = _finish(proc, seen, 300, struck)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"deploy ended {time.monotonic() - struck:.1f} s after the strike")
    return out, proc.returncode, first


def test_an_outbid_deploy_finishes_every_task_on_a_second_instance(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim,
):
    _nap_app(app)
    base = inv.new_stack(ssh_key)
    inv.pulumi(base, "config", "set", "vast-gpu:bidPrice", "5.0")

    out, code, first = _strike(
        inv, vastsim, app, base, "outbid",
        lambda iid: vastsim.admin_post("/_sim/outbid", {"id": iid}))

    assert code == 0, out
    assert f"instance {first} was outbid at task 3 of 4" in out, out
    assert "renting instance 2 of the job" in out and "the 2 task(s) that did not end" in out
    assert "[4/4 write] wrote gamma" in out and "4 ok, 0 failed" in out, out
    assert out.count("wrote alpha") == 1  # finished tasks are not run again
    rows = {r["id"]: r for r in vastsim.ledger()["instances"]}
    ours = [i for i in rows if i >= first]
    assert len(ours) == 2, rows  # the lost one and its replacement
    assert all(rows[i]["phase"] == "destroyed" for i in ours), rows
    assert vastsim.billing_now() == []
    pulled = inv.project / "work_remote" / "outbid" / "work" / "out"
    assert sorted(p.name for p in pulled.iterdir()) == ["alpha.txt", "beta.txt", "gamma.txt"]
    report = json.loads((inv.project / "work_remote" / "outbid" / "report.json").read_text())
    used = report["instances"]
    assert [r["instance_id"] for r in used] == ours, used
    assert used[0]["outcome"].startswith("outbid at task 3 of 4")
    assert all(r["dollars"]["total"] > 0 for r in used)
    assert report["dollars"]["total"] == pytest.approx(sum(r["dollars"]["total"] for r in used))
    assert [t["status"] for t in report["tasks"]] == ["ok"] * 4
    assert report["pulls_each"] and report["pulls_each"][0]["after_task"] == 1
    assert base in inv.stacks() and f"{base}-outbid" not in inv.stacks()


def test_an_on_demand_deploy_stops_when_lost_and_keeps_what_was_pulled(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim,
):
    _nap_app(app)
    base = inv.new_stack(ssh_key)

    out, code, first = _strike(
        inv, vastsim, app, base, "gone", lambda iid: vastsim.admin_post(
            f"/_sim/instances/{iid}/kill", {"status": "offline", "status_msg": "host down"}))

    assert code == 1, out
    assert f"instance {first} was lost at task 3 of 4" in out and "offline" in out, out
    assert "--on-lost stop (the default for an on-demand stack" in out, out
    assert "Tasks that ended with exit 0: 1, 2" in out, out
    assert vastsim.billing_now() == []
    rows = {r["id"]: r for r in vastsim.ledger()["instances"]}
    assert [i for i in rows if i > first] == []  # nothing rented after it
    pulled = inv.project / "work_remote" / "gone" / "work" / "out"
    assert sorted(p.name for p in pulled.iterdir()) == ["alpha.txt", "beta.txt"]
