"""Bids under min_bid, outbid instances and busy machines (cancel_unavail), over raw HTTP."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from providers.records import describe_state, is_outbid
from tests.vastsim.helpers import DEMO_QUERY, Api
from vastsim.bids import UNAVAILABLE_MSG
from vastsim.testing import VastSim

STILL_S = 0.5  # long enough for a zero-boot instance to have moved on if it could


def _offer(api: Api) -> dict:
    return api.search(DEMO_QUERY)[0]


def _billing(sim: VastSim, instance_id: int) -> tuple[bool, bool]:
    row = next(r for r in sim.ledger()["instances"] if r["id"] == instance_id)
    return row["billing_gpu"], row["billing_storage"]


def _alive(sim: VastSim, instance_id: int) -> bool:
    return next(i["alive"] for i in sim.internals() if i["id"] == instance_id)


def test_offers_carry_min_bid(api: Api):
    offers = api.search({**DEMO_QUERY, "type": "bid"})
    assert offers and all(isinstance(o["min_bid"], float) and o["min_bid"] > 0 for o in offers)


@pytest.mark.sshd
def test_a_bid_under_min_bid_is_created_and_stays_scheduling(vastsim: VastSim, api: Api):
    offer = _offer(api)
    low = round(offer["min_bid"] / 2, 4)
    instance_id = api.rent(offer["id"], price=low)
    time.sleep(STILL_S)
    inst = api.show(instance_id)
    assert (inst["actual_status"], inst["intended_status"]) == ("scheduling", "running")
    assert inst["is_bid"] is True and inst["min_bid"] == offer["min_bid"]
    assert "Outbid" in inst["status_msg"] and "minimum bid" in inst["status_msg"]
    assert "ports" not in inst and not _alive(vastsim, instance_id)
    assert _billing(vastsim, instance_id) == (False, True)  # storage only


@pytest.mark.sshd
def test_a_bid_at_min_bid_runs(api: Api):
    offer = _offer(api)
    inst = api.show(api.rent(offer["id"], price=offer["min_bid"]))
    assert inst["actual_status"] == "running" and inst["dph_base"] == offer["min_bid"]


@pytest.mark.sshd
def test_outbid_stops_a_running_bid_instance_storage_still_bills(vastsim: VastSim, api: Api):
    offer = _offer(api)
    bid = api.rent(offer["id"], price=offer["min_bid"] + 0.1)
    on_demand = api.rent()
    port = api.show(bid)["ssh_port"]
    assert vastsim.admin_post("/_sim/outbid", {"id": bid}) == {"outbid": [bid]}
    inst = api.show(bid)
    assert (inst["actual_status"], inst["intended_status"], inst["cur_state"]) == \
        ("stopped", "running", "stopped")
    assert is_outbid(inst) and describe_state(inst).startswith("outbid (stopped)")
    assert "Outbid" in inst["status_msg"] and "ports" not in inst
    assert _billing(vastsim, bid) == (False, True)
    assert not _alive(vastsim, bid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert api.show(on_demand)["actual_status"] == "running"  # only bids are outbid
    # a start is queued, not done: it stays outbid
    assert api.call("PUT", f"/api/v0/instances/{bid}/", {"state": "running"}).status_code == 200
    time.sleep(STILL_S)
    assert is_outbid(api.show(bid))
    # stopped on purpose: not outbid any more in our client's eyes, still billing storage
    api.call("PUT", f"/api/v0/instances/{bid}/", {"state": "stopped"})
    assert not is_outbid(api.show(bid)) and _billing(vastsim, bid) == (False, True)


@pytest.mark.sshd
def test_outbid_all_takes_only_running_bid_instances(vastsim: VastSim, api: Api):
    offers = api.search(DEMO_QUERY)
    bids = [api.rent(o["id"], price=o["min_bid"]) for o in offers[:2]]
    api.rent(offers[2]["id"])
    assert sorted(vastsim.admin_post("/_sim/outbid", {})["outbid"]) == bids
    assert vastsim.admin_post("/_sim/outbid", {})["outbid"] == []  # already outbid


@pytest.mark.sshd
def test_outbid_refuses_an_on_demand_instance(vastsim: VastSim, api: Api):
    instance_id = api.rent()
    r = requests.post(vastsim.url + "/_sim/outbid", json={"id": instance_id}, timeout=10)
    assert r.status_code == 400 and "not a bid instance" in r.json()["error"]
    assert requests.post(vastsim.url + "/_sim/outbid", json={"id": 1}, timeout=10
                         ).status_code == 404


def test_cancel_unavail_on_a_busy_machine_is_refused(vastsim: VastSim, api: Api):
    offer = _offer(api)
    vastsim.admin_post("/_sim/busy", {"machine_id": offer["machine_id"]})
    for body in ({"cancel_unavail": True}, {}):  # missing: true for on-demand, as on vast.ai
        r = api.call("PUT", f"/api/v0/asks/{offer['id']}/",
                      {"image": "x", "disk": 10, **body})
        assert r.status_code == 410, r.text
        assert r.json()["error"] == "no_such_ask" and r.json()["ask_id"] == offer["id"]
        assert str(offer["machine_id"]) in r.json()["msg"]
    assert api.list()["total_instances"] == 0
    assert offer["id"] in {o["id"] for o in api.search({**DEMO_QUERY, "limit": 500})}


@pytest.mark.sshd
def test_busy_machine_without_cancel_unavail_makes_a_stopped_instance(vastsim: VastSim,
                                                                      api: Api):
    offer = _offer(api)
    busy = vastsim.admin_post("/_sim/busy", {"offer_id": offer["id"]})
    assert busy["busy_machines"] == [offer["machine_id"]]
    instance_id = api.rent(offer["id"], cancel_unavail=False)
    time.sleep(STILL_S)
    inst = api.show(instance_id)
    assert (inst["actual_status"], inst["intended_status"]) == ("stopped", "running")
    assert inst["status_msg"] == UNAVAILABLE_MSG and inst["is_bid"] is False
    assert _billing(vastsim, instance_id) == (False, True)
    vastsim.restart()  # the busy mark and the queued start are kept
    api = Api(vastsim)
    assert api.show(instance_id)["actual_status"] == "stopped"
    freed = vastsim.admin_post("/_sim/busy", {"machine_id": offer["machine_id"], "busy": False})
    assert freed == {"busy_machines": [], "started": [instance_id]}
    assert api.wait_status(instance_id, "running")["ports"]
    assert _billing(vastsim, instance_id) == (True, True)


def test_a_bid_on_a_busy_machine_is_not_refused_by_default(vastsim: VastSim, api: Api):
    offer = _offer(api)
    vastsim.admin_post("/_sim/busy", {"machine_id": offer["machine_id"]})
    instance_id = api.rent(offer["id"], price=offer["min_bid"])  # default false for a bid
    assert api.show(instance_id)["actual_status"] == "stopped"


def test_busy_refuses_bad_specs(vastsim: VastSim):
    for spec in ({}, {"machine_id": "7"}, {"machine_id": 7, "busy": "yes"}):
        r = requests.post(vastsim.url + "/_sim/busy", json=spec, timeout=10)
        assert r.status_code == 400, spec


def _bid(api: Api, instance_id: int, price: object) -> requests.Response:
    return api.call("PUT", f"/api/v0/instances/bid_price/{instance_id}/",
                    {"client_id": "me", "price": price})


@pytest.mark.sshd
def test_raising_the_bid_resumes_an_outbid_instance(vastsim: VastSim, api: Api):
    offer = _offer(api)
    instance_id = api.rent(offer["id"], price=offer["min_bid"])
    vastsim.admin_post("/_sim/outbid", {"id": instance_id})
    higher = round(offer["min_bid"] + 0.25, 4)
    assert _bid(api, instance_id, higher).json() == {"success": True}
    inst = api.wait_status(instance_id, "running")
    assert inst["dph_base"] == higher and not is_outbid(inst) and inst["ports"]
    assert _billing(vastsim, instance_id) == (True, True)
    row = next(r for r in vastsim.ledger()["instances"] if r["id"] == instance_id)
    assert row["gpu_rate_per_hour"] == higher


@pytest.mark.sshd
def test_raising_a_bid_under_min_bid_lets_it_start(api: Api):
    offer = _offer(api)
    instance_id = api.rent(offer["id"], price=offer["min_bid"] / 2)
    assert _bid(api, instance_id, offer["min_bid"] / 1.5).status_code == 200  # still under
    time.sleep(STILL_S)
    assert api.show(instance_id)["actual_status"] == "scheduling"
    assert _bid(api, instance_id, offer["min_bid"]).status_code == 200
    assert api.wait_status(instance_id, "running")["intended_status"] == "running"


@pytest.mark.sshd
def test_lowering_a_running_bid_under_min_bid_is_outbid(vastsim: VastSim, api: Api):
    offer = _offer(api)
    instance_id = api.rent(offer["id"], price=offer["min_bid"])
    assert _bid(api, instance_id, offer["min_bid"] / 2).status_code == 200
    inst = api.show(instance_id)
    assert is_outbid(inst) and not _alive(vastsim, instance_id)


@pytest.mark.sshd
def test_change_bid_errors(api: Api):
    on_demand = api.rent()
    r = _bid(api, on_demand, 0.5)
    assert r.status_code == 400 and "not an interruptible" in r.json()["msg"]
    bid = api.rent(price=1.0)
    for bad in (0, 0.0001, "1", None, True):
        r = _bid(api, bid, bad)
        assert r.status_code == 400 and r.json()["msg"] == "Please set a bid price >= 0.001."
    r = _bid(api, 99, 0.5)
    assert r.status_code == 404 and r.json()["msg"] == "Instance with that ID does not exist."
