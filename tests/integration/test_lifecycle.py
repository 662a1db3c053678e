"""providers.lifecycle against vastsim with real sshd: the paths the e2e tests do not reach."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from providers.api import RetryPolicy, VastClient
from providers.errors import BidTooLowError, LifecycleError, MaybeBillingError, NoOfferError
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.offers import search_body
from providers.settings import parse_settings
from remote.ssh import login_probe
from vastsim.testing import VastSim

pytestmark = pytest.mark.sshd


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def make(sim: VastSim, key: Path, lines: list[str]) -> tuple[VastClient, Lifecycle]:
    client = VastClient(sim.url, sim.api_key, retry=RetryPolicy(first_delay_s=0.01))
    return client, Lifecycle(
        client, progress=lines.append, ssh_probe=lambda h, p: login_probe(h, p, key),
        poll_first_s=0.05, poll_max_s=0.2,
    )


def spec(key: Path, tag: str = "vast-gpu:p/s/gpu", **settings: object) -> InstanceSpec:
    raw = {"image": "img", "disk": 20, "readyTimeout": 20, "maxAttempts": 2, **settings}
    return InstanceSpec(parse_settings(raw), tag=tag,
                        ssh_public_key=key.with_suffix(".pub").read_text())


def test_lost_rent_answer_is_resolved_by_label_not_by_a_second_rent(vastsim: VastSim, key: Path):
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"})
    lines: list[str] = []
    _, lifecycle = make(vastsim, key, lines)
    record = lifecycle.create(spec(key)).record
    rents = [r for r in vastsim.admin_get("/_sim/requests")["requests"]
             if r["method"] == "PUT" and "/asks/" in r["path"]]
    assert len(rents) == 1
    assert any("looking for the instance by its label" in line for line in lines)
    assert vastsim.billing_now() == [record["id"]]
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    assert vastsim.billing_now() == []


def test_delete_also_destroys_everything_else_with_the_tag(vastsim: VastSim, key: Path):
    client, lifecycle = make(vastsim, key, [])
    a = lifecycle.create(spec(key)).record
    b = lifecycle.create(spec(key, tag="vast-gpu:p/s/other")).record
    offer = client.search_offers({"order": [["dph_total", "asc"]]})[0]
    stray = client.rent(offer["id"], {"image": "img", "env": {}, "disk": 20.0,
                                      "label": "mine [vast-gpu:p/s/gpu]"})
    gone = lifecycle.delete(a["id"], "vast-gpu:p/s/gpu")
    assert sorted(gone) == sorted([a["id"], stray])
    assert vastsim.billing_now() == [b["id"]]
    lifecycle.delete(b["id"], "vast-gpu:p/s/other")


def test_nothing_matches_is_no_offer_error_and_rents_nothing(vastsim: VastSim, key: Path):
    _, lifecycle = make(vastsim, key, [])
    with pytest.raises(NoOfferError, match="gpu_ram >= 5000"):
        lifecycle.create(spec(key, query="gpu_ram >= 5000"))
    assert vastsim.ledger()["instances"] == []


def test_price_cap_rents_nothing_above_it(vastsim: VastSim, key: Path):
    client, lifecycle = make(vastsim, key, [])
    prices = sorted({o["dph_total"] for o in client.search_offers(search_body(spec(key).settings))})
    cap = (prices[0] + prices[1]) / 2
    record = lifecycle.create(spec(key, maxPricePerHour=cap)).record
    assert record["dph_total"] <= cap
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    with pytest.raises(NoOfferError):
        lifecycle.create(spec(key, maxPricePerHour=prices[0] / 2))
    assert vastsim.billing_now() == []


# -- the known instance first, and a lost rent answer whose look-up fails too --------------

LIST = "/api/v1/instances"


def test_a_failing_list_never_stands_between_the_known_instance_and_its_delete(
    vastsim: VastSim, key: Path
):
    _, lifecycle = make(vastsim, key, [])
    record = lifecycle.create(spec(key)).record
    vastsim.add_faults({"kind": "server_error", "count": 1000, "status": 503, "method": "GET",
                        "path": LIST})
    with pytest.raises(MaybeBillingError) as err:
        lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    assert vastsim.billing_now() == []  # the DELETE went first and was verified
    assert f"instance {record['id']} destroyed (verified)" in str(err.value)
    assert "inv sweep" in str(err.value)
    vastsim.clear_faults()
    assert lifecycle.delete(None, "vast-gpu:p/s/gpu") == []  # the rerun finds nothing more


def test_a_lost_rent_answer_outlasts_a_burst_of_list_failures(vastsim: VastSim, key: Path):
    vastsim.add_faults({"kind": "slow", "count": 1, "delay_s": 0.5, "method": "PUT",
                        "path": "/asks/"},
                       {"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"},
                       {"kind": "server_error", "count": 8, "skip": 1, "status": 503,
                        "method": "GET", "path": LIST})
    lines: list[str] = []
    _, lifecycle = make(vastsim, key, lines)
    record = lifecycle.create(spec(key)).record
    assert vastsim.billing_now() == [record["id"]]
    assert any("label look-up failed" in line for line in lines)
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    assert vastsim.billing_now() == []


def test_when_the_look_up_cannot_tell_the_error_says_what_may_bill(vastsim: VastSim, key: Path):
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"},
                       # the leftover check before the rent passes; every list after it fails
                       {"kind": "server_error", "count": 1000, "skip": 1, "status": 503,
                        "method": "GET", "path": LIST})
    client = VastClient(vastsim.url, vastsim.api_key, retry=RetryPolicy(first_delay_s=0.01))
    lifecycle = Lifecycle(client, progress=lambda _l: None, ssh_probe=lambda h, p: None,
                          poll_first_s=0.05, poll_max_s=0.2, lookup_deadline_s=1.0)
    s = spec(key)
    with pytest.raises(MaybeBillingError) as err:
        lifecycle.create(s)
    msg = str(err.value)
    assert "may be billing" in msg and s.label in msg and "inv sweep" in msg
    [billing] = vastsim.billing_now()  # the rent did happen
    vastsim.clear_faults()
    rows = VastClient(vastsim.url, vastsim.api_key).list_instances()
    assert [r["label"] for r in rows if r["id"] == billing] == [s.label]


# -- fail fast, say why, and never rent what cannot start -----------------------------------

def test_an_instance_that_exits_fails_fast_with_its_logs_and_is_destroyed(
    vastsim: VastSim, key: Path
):
    vastsim.add_faults({"kind": "exited", "count": 1,
                        "status_msg": "Error response from daemon: pull access denied\n"})
    lines: list[str] = []
    _, lifecycle = make(vastsim, key, lines)
    started = time.monotonic()
    with pytest.raises(LifecycleError) as err:
        lifecycle.create(spec(key, maxAttempts=1, onstart="echo boot-marker-7",
                              readyTimeout=300))
    assert time.monotonic() - started < 30  # not the 300 s ready timeout
    msg = str(err.value)
    assert "pull access denied" in msg
    assert "last log lines" in msg
    assert vastsim.billing_now() == []


def test_a_bid_under_every_min_bid_is_refused_before_renting(vastsim: VastSim, key: Path):
    client, lifecycle = make(vastsim, key, [])
    offers = client.search_offers(search_body(spec(key, bidPrice=0.5).settings))
    lowest = min(o["min_bid"] for o in offers)
    with pytest.raises(BidTooLowError) as err:
        lifecycle.create(spec(key, bidPrice=round(lowest / 2, 4) or 0.001))
    assert f"${lowest:.4f}/h" in str(err.value) and "vast-gpu:bidPrice" in str(err.value)
    assert vastsim.ledger()["instances"] == []


def test_offers_with_min_bid_above_the_bid_are_skipped_and_said(vastsim: VastSim, key: Path):
    lines: list[str] = []
    client, lifecycle = make(vastsim, key, lines)
    offers = client.search_offers(search_body(spec(key, bidPrice=0.5).settings))
    bids = sorted(o["min_bid"] for o in offers)
    bid = bids[len(bids) // 2]
    record = lifecycle.create(spec(key, bidPrice=bid)).record
    assert record["is_bid"] is True and record["dph_base"] == pytest.approx(bid)
    assert any("with min_bid above the bid" in line for line in lines)
    assert any(f"bid ${bid:.3f}/h" in line for line in lines)  # the log shows the bid
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
