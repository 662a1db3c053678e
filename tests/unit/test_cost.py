"""providers/cost.py against vastsim's catalogue prices, and the maxCost rule of the lifecycle."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.cost import (
    BYTES_PER_GB,
    Rates,
    cost_so_far,
    estimate,
    gb,
    over_cap_message,
    rates,
    run_cost,
)
from providers.errors import CostCapError
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.offers import Candidate, select
from providers.settings import parse_settings, problems
from vastsim.catalogue import OFFERS_FILE, priced
from workflow.search import offer_table

OFFERS = json.loads(OFFERS_FILE.read_text())["offers"]


def an_offer(*, distinct_inet: bool = True) -> dict[str, Any]:
    """A real catalogue offer; one whose up and down prices differ shows a swapped direction."""
    for offer in OFFERS:
        if not distinct_inet or offer["inet_up_cost"] != offer["inet_down_cost"]:
            return offer
    raise AssertionError("no such offer in the catalogue")


def test_estimate_matches_hand_arithmetic_on_a_real_offer():
    offer = an_offer()
    est = estimate(offer, disk_gb=60, hours=3, sync_gb=2.5, pull_gb=4)
    gpu_h = offer["dph_base"]
    storage_h = 60 * offer["storage_cost"] / 720
    assert est.offer_id == offer["id"]
    assert est.gpu_per_hour == pytest.approx(gpu_h)
    assert est.storage_per_hour == pytest.approx(storage_h)
    assert est.gpu == pytest.approx(3 * gpu_h)
    assert est.storage == pytest.approx(3 * storage_h)
    # the sync is what the machine downloads, the pull what it uploads
    assert est.bandwidth_sync == pytest.approx(2.5 * offer["inet_down_cost"])
    assert est.bandwidth_pull == pytest.approx(4 * offer["inet_up_cost"])
    assert est.total == pytest.approx(
        3 * (gpu_h + storage_h) + 2.5 * offer["inet_down_cost"] + 4 * offer["inet_up_cost"]
    )
    line = est.describe()
    assert f"offer {offer['id']}" in line and f"total ${est.total:.4f}" in line


def test_per_hour_rates_equal_vastsims_own_search_price_object():
    """vastsim prices a search for 60 GB as it will bill: the estimate's rates are those."""
    for offer in OFFERS[:25]:
        row = priced(offer, 60, "on-demand")
        est = estimate(row, disk_gb=60, hours=1, sync_gb=0, pull_gb=0)
        assert est.gpu_per_hour == pytest.approx(row["search"]["gpuCostPerHour"])
        assert est.storage_per_hour == pytest.approx(row["search"]["diskHour"])
        assert est.total == pytest.approx(row["dph_total"])  # dph_total: GPU + storage, 1 h


def test_a_bid_replaces_dph_base():
    offer = an_offer()
    est = estimate(offer, disk_gb=20, hours=2, sync_gb=0, pull_gb=0, bid_price=0.05)
    assert est.gpu == pytest.approx(0.1)
    assert est.storage == pytest.approx(2 * 20 * offer["storage_cost"] / 720)


def test_instance_record_rates_use_its_own_disk():
    record = {"dph_base": 0.4333, "disk_space": 20.0, "storage_cost": 0.2,
              "inet_up_cost": 0.004, "inet_down_cost": 0.003}
    r = rates(record)
    assert r == Rates(0.4333, pytest.approx(20 * 0.2 / 720), 0.003, 0.004)
    # without dph_base: dph_total less its storage part
    assert rates({"dph_total": 0.5, "storage_total_cost": 0.1}).gpu_per_hour == pytest.approx(0.4)


def settings(**kw: Any):
    return parse_settings({"image": "img", "disk": 60, **kw})


def test_the_selector_keeps_the_order_under_max_cost_and_names_the_cheapest_refused():
    offers = [an_offer()] + [o for o in OFFERS[:30] if o is not an_offer()]
    ests = {o["id"]: estimate(o, disk_gb=60, hours=2, sync_gb=1, pull_gb=1).total for o in offers}
    cap = sorted(ests.values())[len(ests) // 2]
    chosen = select(lambda _body: offers, settings(maxCost=cap, expectedHours=2))
    assert [c.offer_id for c in chosen.candidates] == [
        o["id"] for o in offers if ests[o["id"]] <= cap]
    refused = min(v for v in ests.values() if v > cap)
    assert any(f"above maxCost ${cap:.4f}" in n for n in chosen.notes)
    everything = select(lambda _body: offers, settings(expectedHours=2))
    assert [c.offer_id for c in everything.candidates] == [o["id"] for o in offers]
    with pytest.raises(CostCapError) as caught:
        select(lambda _body: offers, settings(maxCost=min(ests.values()) * 0.5, expectedHours=2))
    assert caught.value.estimate_total == min(ests.values())
    est = estimate(offers[0], disk_gb=60, hours=2, sync_gb=1, pull_gb=1)
    msg = over_cap_message(est, cap, "raise maxCost")
    assert f"${cap:.4f}" in msg and f"${est.total:.4f}" in msg and "raise maxCost" in msg
    assert refused > cap


def test_cost_so_far_is_rates_times_time_since_start():
    record = {"dph_base": 0.36, "disk_space": 72.0, "storage_cost": 0.1, "start_date": 1000.0}
    assert cost_so_far(record, 1000.0 + 1800) == pytest.approx(0.5 * (0.36 + 72 * 0.1 / 720))
    assert cost_so_far({"dph_base": 1.0}, 5000.0) is None


def test_run_cost_is_marked_estimated():
    r = Rates(0.72, 0.036, 0.01, 0.02)
    got = run_cost(r, gpu_seconds=1800, storage_seconds=3600, sync_bytes=BYTES_PER_GB,
                   pull_bytes=2 * BYTES_PER_GB)
    assert got["estimated"] is True
    assert got["total"] == pytest.approx(0.36 + 0.036 + 0.01 + 0.04)
    assert gb(BYTES_PER_GB // 2) == 0.5


def test_offer_table_gets_an_estimate_column_before_where():
    offers = [priced(o, 60, "on-demand") for o in OFFERS[:3]]
    ests = [estimate(o, disk_gb=60, hours=3, sync_gb=0, pull_gb=0) for o in offers]
    cands = [Candidate(o, e) for o, e in zip(offers, ests, strict=True)]
    header, *rows = offer_table(cands).splitlines()
    assert "est $ 3h" in header and header.index("est $ 3h") < header.index("where")
    start = header.index("est $ 3h")
    assert [float(r[start:].split()[0]) for r in rows] == [round(e.total, 3) for e in ests]


# -- stack settings --------------------------------------------------------------------------

def test_cost_settings_are_validated_and_defaulted():
    bad = {e.key for e in problems({"image": "img", "maxCost": 0, "expectedHours": -1,
                                    "expectedSyncGB": "x", "expectedPullGB": -0.5})}
    assert bad == {"vast-gpu:maxCost", "vast-gpu:expectedHours", "vast-gpu:expectedSyncGB",
                   "vast-gpu:expectedPullGB"}
    assert problems({"image": "img", "maxCost": 2.5, "expectedHours": 3, "expectedSyncGB": 0,
                     "expectedPullGB": 10}) == []
    spec = settings()
    assert (spec.max_cost, spec.expected_hours, spec.expected_sync_gb,
            spec.expected_pull_gb) == (None, 1.0, 1.0, 1.0)
    spec = settings(maxCost=2, expectedHours=4)
    assert spec.max_cost == 2 and spec.expected_hours == 4.0


# -- the lifecycle: estimate line, and no rent over maxCost ----------------------------------

class FakeClient:
    def __init__(self, offers: list[dict[str, Any]]) -> None:
        self.offers = offers
        self.rented: list[int] = []

    def search_offers(self, _body: Any) -> list[dict[str, Any]]:
        return self.offers

    def list_instances(self) -> list[dict[str, Any]]:
        return []

    def rent(self, offer_id: int, _body: Any) -> int:
        self.rented.append(offer_id)
        raise AssertionError("rented")


def spec(**kw: Any) -> InstanceSpec:
    base: dict[str, Any] = dict(query="num_gpus=1", order="dph+", readyTimeout=1,
                                maxAttempts=1)
    return InstanceSpec(settings(**{**base, **kw}), tag="vast-gpu:p/s/gpu", ssh_public_key="k")


def test_max_cost_below_every_estimate_refuses_before_any_rent():
    offers = [priced(o, 60, "on-demand") for o in OFFERS[:5]]
    client = FakeClient(offers)
    lines: list[str] = []
    life = Lifecycle(client, progress=lines.append, ssh_probe=lambda h, p: None)  # type: ignore[arg-type]
    cheapest = min(estimate(o, disk_gb=60, hours=5, sync_gb=1, pull_gb=1).total for o in offers)
    with pytest.raises(CostCapError) as caught:
        life.create(spec(maxCost=cheapest * 0.99, expectedHours=5))
    assert client.rented == []
    msg = str(caught.value)
    assert f"${cheapest:.4f}" in msg and f"${cheapest * 0.99:.4f}" in msg
    assert "vast-gpu:maxCost" in msg and "nothing was rented" in msg


def test_max_cost_skips_offers_over_it_and_the_rent_line_shows_the_estimate():
    offers = [priced(o, 60, "on-demand") for o in OFFERS[:6]]
    totals = [estimate(o, disk_gb=60, hours=2, sync_gb=1, pull_gb=1).total for o in offers]
    cap = sorted(totals)[2]
    first_ok = next(o for o, t in zip(offers, totals, strict=True) if t <= cap)
    client = FakeClient(offers)
    lines: list[str] = []
    life = Lifecycle(client, progress=lines.append, ssh_probe=lambda h, p: None)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="rented"):
        life.create(spec(maxCost=cap, expectedHours=2))
    assert client.rented == [first_ok["id"]]
    expected = estimate(first_ok, disk_gb=60, hours=2, sync_gb=1, pull_gb=1)
    assert expected.describe() in lines
    assert any("offer(s) skipped with an estimate above maxCost" in line for line in lines)
