"""The stack path on an account as vast.ai serves a new one today: the v0 instance list answers
410 (vastsim's default), the account holds 30 instances that are not ours, and a bid instance
can be outbid."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e


def test_up_sync_run_pull_down_on_a_new_account_with_30_foreign_instances(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim,
):
    assert requests.get(f"{vastsim.url}/api/v0/instances/", headers=vastsim.headers,
                        timeout=10).status_code == 410  # a new account: v0 is gone
    foreign = sorted(vastsim.seed(26) + vastsim.seed(4, status="stopped"))
    assert len(foreign) == 30
    before = _ledger(vastsim)

    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    ours = [i for i in vastsim.billing_now() if i not in foreign]
    assert len(ours) == 1
    inv("sync", "--stack", stack, "--src", str(app))
    (app / "jobs.txt").write_text("write alpha\n")
    inv("run", "--stack", stack, "--tasks", str(app / "jobs.txt"), "--job", "crowd")
    inv("pull", "--stack", stack)
    pulled = inv.project / "work_remote" / "crowd" / "work"
    assert (pulled / "out" / "alpha.txt").read_text() == "alpha\n"
    listed = inv("instances").stdout
    assert all(f"instance {i}" in listed for i in foreign + ours)  # paged past the first 25
    assert "no leftover instances" in inv("sweep").stdout
    inv("down", "--stack", stack)

    after = _ledger(vastsim)
    assert ours[0] not in vastsim.billing_now()
    for i in foreign:  # nothing of anyone else's was touched
        assert after[i]["phase"] == before[i]["phase"] != "destroyed", after[i]
        assert after[i]["billing_storage"]
        assert after[i]["storage_seconds"] > before[i]["storage_seconds"]
    assert sorted(vastsim.billing_now()) == foreign
    assert not [u for u in vastsim.unexpected() if "/api/" in u["path"]]


def _ledger(sim: VastSim) -> dict[int, dict]:
    return {row["id"]: row for row in sim.ledger()["instances"]}


def test_an_outbid_instance_is_said_plainly_by_status_and_run(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim,
):
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:bidPrice", "5.0")
    inv("up", "--stack", stack)
    [iid] = vastsim.billing_now()
    vastsim.admin_post("/_sim/outbid", {"id": iid})
    status = inv("status", "--stack", stack).stdout
    assert f"instance {iid}" in status and "outbid (stopped)" in status, status
    assert "storage still bills" in status
    ran = inv("run", "--stack", stack, "--", "write", "x", check=False)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 1 and "outbid (stopped)" in out, out
    assert vastsim.billing_now() == [iid]  # stopped, yet its storage bills until destroyed
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []
