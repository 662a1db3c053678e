"""The billing ledger (GPU while running, storage while it exists) and restart persistence."""

from __future__ import annotations

import time

import pytest

from tests.vastsim.helpers import DEMO_QUERY, Api
from vastsim.ledger import Meter


def _row(sim, instance_id: int) -> dict:
    return next(r for r in sim.ledger()["instances"] if r["id"] == instance_id)


def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # poll interval of the deadline loop


def test_ledger_arithmetic_against_the_offer(vastsim, api: Api):
    offer = api.search(DEMO_QUERY)[0]
    instance_id = api.rent(offer["id"], disk=50.0)
    _until(lambda: _row(vastsim, instance_id)["gpu_seconds"] >= 0.3)
    row = _row(vastsim, instance_id)
    assert row["dph_base"] == offer["dph_base"] and row["storage_cost"] == offer["storage_cost"]
    gpu_rate = offer["dph_base"] / 3600
    disk_rate = 50.0 * offer["storage_cost"] / 720 / 3600
    assert row["gpu_dollars"] == pytest.approx(row["gpu_seconds"] * gpu_rate, rel=1e-12)
    assert row["storage_dollars"] == pytest.approx(row["storage_seconds"] * disk_rate, rel=1e-12)
    assert row["dollars"] == pytest.approx(row["gpu_dollars"] + row["storage_dollars"])
    assert row["storage_seconds"] >= row["gpu_seconds"]
    assert vastsim.billing_now() == [instance_id]
    user = api.call("GET", "/api/v0/users/current/").json()
    assert user["credit"] < 100.0


def test_stop_bills_storage_only_and_destroy_bills_nothing(vastsim, api: Api):
    instance_id = api.rent()
    api.call("PUT", f"/api/v0/instances/{instance_id}/", {"state": "stopped"})
    stopped = _row(vastsim, instance_id)
    assert (stopped["billing_gpu"], stopped["billing_storage"]) == (False, True)
    _until(lambda: _row(vastsim, instance_id)["storage_seconds"]
           > stopped["storage_seconds"] + 0.2)
    assert _row(vastsim, instance_id)["gpu_seconds"] == stopped["gpu_seconds"]
    api.call("DELETE", f"/api/v0/instances/{instance_id}/")
    ledger = vastsim.ledger()
    gone = next(r for r in ledger["instances"] if r["id"] == instance_id)
    assert (gone["billing_gpu"], gone["billing_storage"]) == (False, False)
    assert ledger["billing_now"] == []
    _until(lambda: vastsim.ledger()["now"] > ledger["now"] + 0.2)
    assert _row(vastsim, instance_id)["dollars"] == gone["dollars"]


@pytest.mark.sshd
def test_restart_keeps_instances_keys_ledger_and_host_key(vastsim, api: Api):
    key = api.call("POST", "/api/v0/ssh/", {"ssh_key": "ssh-ed25519 AAAAkeep"}).json()["key"]
    running, stopped = api.rent(label="a"), api.rent(label="b")
    api.call("PUT", f"/api/v0/instances/{stopped}/", {"state": "stopped"})
    vastsim.add_faults({"kind": "slow", "count": 5, "delay_s": 0.01})
    before = {i["id"]: i for i in vastsim.internals()}
    billed = _row(vastsim, running)["dollars"]
    vastsim.restart()
    assert vastsim.admin_get("/_sim/faults")["faults"][0]["remaining"] == 5  # admin: no faults
    api = Api(vastsim)
    assert api.call("GET", "/api/v0/ssh/").json()[0]["id"] == key["id"]
    rows = {i["id"]: i for i in api.call("GET", "/api/v1/instances/").json()["instances"]}
    assert rows[running]["actual_status"] == "running" and rows[running]["label"] == "a"
    assert rows[stopped]["actual_status"] == "stopped"
    after = {i["id"]: i for i in vastsim.internals()}
    assert after[running]["alive"] and after[running]["pid"] != before[running]["pid"]
    assert after[running]["host_key"] == before[running]["host_key"]
    assert not after[stopped]["alive"]
    assert _row(vastsim, running)["dollars"] >= billed


def test_a_new_gpu_rate_prices_only_the_seconds_after_it():
    meter = Meter(gpu_rate_h=3600.0, storage_rate_h=0.0)  # $1 a second
    meter.set(100.0, gpu=True, storage=False)
    meter.reprice(110.0, 7200.0)  # $2 a second from t=110
    report = meter.report(115.0)
    assert report["gpu_seconds"] == 15.0 and report["gpu_rate_per_hour"] == 7200.0
    assert report["gpu_dollars"] == pytest.approx(10 * 1.0 + 5 * 2.0)
    restored = Meter(**meter.to_state())  # the state file keeps the earlier dollars
    assert restored.report(115.0)["gpu_dollars"] == pytest.approx(20.0)
