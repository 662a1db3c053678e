"""providers.lifecycle against vastsim with real sshd: the paths the e2e tests do not reach."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from providers.api import RetryPolicy, VastClient
from providers.errors import NoOfferError
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.settings import DEFAULT_ORDER, DEFAULT_QUERY
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


def spec(key: Path, **overrides: object) -> InstanceSpec:
    base = dict(image="img", disk_gb=20, query=DEFAULT_QUERY, order=DEFAULT_ORDER,
                tag="vast-gpu:p/s/gpu", ssh_public_key=key.with_suffix(".pub").read_text(),
                ready_timeout_s=20, max_attempts=2)
    return InstanceSpec(**{**base, **overrides})  # type: ignore[arg-type]


def test_lost_rent_answer_is_resolved_by_label_not_by_a_second_rent(vastsim: VastSim, key: Path):
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"})
    lines: list[str] = []
    _, lifecycle = make(vastsim, key, lines)
    record = lifecycle.create(spec(key))
    rents = [r for r in vastsim.admin_get("/_sim/requests")["requests"]
             if r["method"] == "PUT" and "/asks/" in r["path"]]
    assert len(rents) == 1
    assert any("looking for the instance by its label" in line for line in lines)
    assert vastsim.billing_now() == [record["id"]]
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    assert vastsim.billing_now() == []


def test_delete_also_destroys_everything_else_with_the_tag(vastsim: VastSim, key: Path):
    client, lifecycle = make(vastsim, key, [])
    a = lifecycle.create(spec(key))
    b = lifecycle.create(spec(key, tag="vast-gpu:p/s/other"))
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
    prices = sorted({o["dph_total"] for o in client.search_offers(spec(key).search_body())})
    cap = (prices[0] + prices[1]) / 2
    record = lifecycle.create(spec(key, max_price=cap))
    assert record["dph_total"] <= cap
    lifecycle.delete(record["id"], "vast-gpu:p/s/gpu")
    with pytest.raises(NoOfferError):
        lifecycle.create(spec(key, max_price=prices[0] / 2))
    assert vastsim.billing_now() == []
