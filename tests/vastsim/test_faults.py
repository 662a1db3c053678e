"""Every fault kind, set at start (--faults) or at run time (POST /_sim/faults), fires exactly."""

from __future__ import annotations

import os
import socket
import time

import pytest
import requests

from tests.vastsim.helpers import DEMO_QUERY, Api


def _stays(api: Api, instance_id: int, status: str, seconds: float = 0.4) -> None:
    """Assert the status does not change for ``seconds`` (a deadline loop, not a sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert api.show(instance_id)["actual_status"] == status


def test_offer_taken_by_id(vastsim, api: Api):
    first, second = (o["id"] for o in api.search(DEMO_QUERY)[:2])
    vastsim.add_faults({"kind": "offer_taken", "offer_ids": [first]})
    r = api.call("PUT", f"/api/v0/asks/{first}/", {"image": "x", "disk": 10})
    assert r.status_code == 410
    assert r.json() == {"success": False, "error": "no_such_ask", "ask_id": first,
                        "msg": f"error 410/3907: no_such_ask Instance type {first} is no "
                               "longer available."}
    assert first not in {o["id"] for o in api.search({**DEMO_QUERY, "limit": 500})}
    assert api.rent(second)
    assert vastsim.admin_get("/_sim/faults") == {"faults": []}


def test_offer_taken_next_n_rents(vastsim, api: Api):
    vastsim.add_faults({"kind": "offer_taken", "count": 2})
    offers = [o["id"] for o in api.search(DEMO_QUERY)[:3]]
    for offer_id in offers[:2]:
        r = api.call("PUT", f"/api/v0/asks/{offer_id}/", {"image": "x", "disk": 10})
        assert r.status_code == 410 and r.json()["error"] == "no_such_ask"
    assert api.rent(offers[2])
    assert api.call("GET", "/api/v1/instances/").json()["instances_found"] == 1


def test_stuck_in_loading(vastsim, api: Api):
    vastsim.add_faults({"kind": "stuck_loading", "count": 1})
    stuck = api.rent()
    _stays(api, stuck, "loading")
    assert "ports" not in api.show(stuck)
    assert api.show(api.rent())["actual_status"] == "running"
    ledger = {row["id"]: row for row in vastsim.ledger()["instances"]}
    assert ledger[stuck]["billing_gpu"] is False and ledger[stuck]["billing_storage"] is True


def test_exited_with_status_msg(vastsim, api: Api):
    msg = "Error response from daemon: pull access denied for nope/nope\n"
    vastsim.add_faults({"kind": "exited", "count": 1, "status_msg": msg})
    dead = api.rent()
    inst = api.show(dead)
    assert inst["actual_status"] == "exited" and inst["status_msg"] == msg
    assert inst["intended_status"] == "running" and "ports" not in inst
    assert api.show(api.rent())["actual_status"] == "running"


def test_rate_limit_text_then_json_without_retry_after(vastsim, api: Api):
    vastsim.add_faults({"kind": "rate_limit", "count": 2, "method": "GET",
                        "path": r"^/api/v1/instances", "body": "both"})
    assert api.call("POST", "/api/v0/bundles/", DEMO_QUERY).status_code == 200  # not matched
    first = api.call("GET", "/api/v1/instances/")
    assert first.status_code == 429 and first.text == "API requests too frequent"
    assert "Retry-After" not in first.headers
    second = api.call("GET", "/api/v1/instances/")
    assert second.status_code == 429 and second.json() == {
        "detail": "API requests too frequent endpoint threshold=1.0"}
    assert api.call("GET", "/api/v1/instances/").status_code == 200
    faults = [r["fault"] for r in vastsim.admin_get("/_sim/requests")["requests"]]
    assert faults == [None, "rate_limit", "rate_limit", None]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors(vastsim, api: Api, status):
    vastsim.add_faults({"kind": "server_error", "status": status, "count": 1})
    r = api.call("GET", "/api/v1/instances/")
    assert r.status_code == status
    assert api.call("GET", "/api/v1/instances/").status_code == 200


def test_server_error_after_the_work_loses_the_answer(vastsim, api: Api):
    vastsim.add_faults({"kind": "server_error", "status": 504, "after": True,
                        "method": "PUT", "path": "/asks/"})
    offer_id = api.search(DEMO_QUERY)[0]["id"]
    r = api.call("PUT", f"/api/v0/asks/{offer_id}/", {"image": "x", "disk": 10, "label": "l1"})
    assert r.status_code == 504
    listed = api.call("GET", "/api/v1/instances/").json()["instances"]
    assert [i["label"] for i in listed] == ["l1"]  # created although the client saw a 504


def test_slow_answers(vastsim, api: Api):
    vastsim.add_faults({"kind": "slow", "delay_s": 0.5, "count": 1})
    started = time.monotonic()
    assert api.call("GET", "/api/v1/instances/").status_code == 200
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    api.call("GET", "/api/v1/instances/")
    assert time.monotonic() - started < 0.5


def test_faults_from_file_at_start(vastsim_factory):
    sim = vastsim_factory(faults=[{"kind": "server_error", "status": 503, "count": 1}])
    api = Api(sim)
    assert api.call("GET", "/api/v1/instances/").status_code == 503
    assert api.call("GET", "/api/v1/instances/").status_code == 200


def test_fault_admin_list_clear_and_bad_specs(vastsim):
    vastsim.add_faults({"kind": "slow", "count": 3, "delay_s": 0.1})
    assert [(f["kind"], f["remaining"]) for f in vastsim.admin_get("/_sim/faults")["faults"]] \
        == [("slow", 3)]
    r = requests.delete(vastsim.url + "/_sim/faults", timeout=10)
    assert r.json() == {"faults": []}
    for bad in ({"kind": "meteor"}, {"kind": "server_error", "status": 404},
                {"kind": "slow", "count": 0}, {"kind": "rate_limit", "body": "xml"},
                {"kind": "slow", "colour": "red"}):
        r = requests.post(vastsim.url + "/_sim/faults", json=bad, timeout=10)
        assert r.status_code == 400 and r.json()["error"], bad


def test_kill_offline_and_exited(vastsim, api: Api):
    offline, exited = api.rent(), api.rent()
    pids = {i["id"]: i["pid"] for i in vastsim.internals()}
    vastsim.admin_post(f"/_sim/instances/{offline}/kill", {"status": "offline"})
    vastsim.admin_post(f"/_sim/instances/{exited}/kill",
                       {"status": "exited", "status_msg": "killed by OOM\n"})
    assert api.show(offline)["actual_status"] == "offline"
    inst = api.show(exited)
    assert inst["actual_status"] == "exited" and inst["status_msg"] == "killed by OOM\n"
    alive = {i["id"]: i["alive"] for i in vastsim.internals()}
    assert alive == {offline: False, exited: False}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert vastsim.billing_now() == [exited]  # offline hosts bill nothing; exited bills disk


def test_boot_timeline_with_boot_seconds(vastsim_factory):
    sim = vastsim_factory(boot_seconds=1.0)
    api = Api(sim)
    instance_id = api.rent()
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        inst = api.show(instance_id)
        if not seen or seen[-1] != inst["actual_status"]:
            seen.append(inst["actual_status"])
        assert ("ports" in inst) == (inst["actual_status"] == "running")
        if inst["actual_status"] == "running":
            break
    assert seen == ["scheduling", "loading", "running"]
    ledger = sim.ledger()["instances"][0]
    assert ledger["storage_seconds"] - ledger["gpu_seconds"] >= 0.9  # no GPU bill while loading


@pytest.mark.sshd
def test_ssh_refuses_for_a_while_after_running(vastsim, api: Api):
    vastsim.add_faults({"kind": "ssh_refuse", "seconds": 1.0})
    rented = time.monotonic()
    inst = api.show(api.rent())
    assert inst["actual_status"] == "running"
    port = int(inst["ports"]["22/tcp"][0]["HostPort"])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    deadline = time.monotonic() + 10
    banner = b""
    while time.monotonic() < deadline and not banner.startswith(b"SSH-"):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                banner = s.recv(64)
        except OSError:
            time.sleep(0.02)  # poll interval of the deadline loop
    assert banner.startswith(b"SSH-") and time.monotonic() - rented >= 1.0
