"""Our client on an account that holds 30 instances that are not ours (vastsim seeds them).

Everything we find by label must come from paging the v1 list past its first 25 rows, and
nothing of anyone else's may be touched: the ledger shows every foreign instance still billing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from providers.api import RetryPolicy, VastClient
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.settings import parse_settings
from remote.ssh import login_probe
from vastsim.testing import VastSim

pytestmark = pytest.mark.sshd

TAG = "vast-gpu:p/s/gpu"
FOREIGN = 30


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


@pytest.fixture
def crowded(vastsim: VastSim) -> list[int]:
    """30 foreign instances: most running, a few stopped or exited, as a real account."""
    return sorted(vastsim.seed(24) + vastsim.seed(4, status="stopped")
                  + vastsim.seed(2, status="exited"))


def _lifecycle(sim: VastSim, key: Path, lines: list[str]) -> tuple[VastClient, Lifecycle]:
    client = VastClient(sim.url, sim.api_key, retry=RetryPolicy(first_delay_s=0.01))
    return client, Lifecycle(client, progress=lines.append,
                             ssh_probe=lambda h, p: login_probe(h, p, key),
                             poll_first_s=0.05, poll_max_s=0.2)


def _spec(key: Path) -> InstanceSpec:
    settings = parse_settings({"image": "img", "disk": 20, "readyTimeout": 20, "maxAttempts": 2})
    return InstanceSpec(settings, tag=TAG, ssh_public_key=key.with_suffix(".pub").read_text())


def _untouched(sim: VastSim, foreign: list[int]) -> None:
    rows = {r["id"]: r for r in sim.ledger()["instances"]}
    assert all(rows[i]["phase"] != "destroyed" for i in foreign)
    assert set(foreign) <= set(sim.billing_now())  # stopped ones bill their storage too
    touched = [r for r in sim.admin_get("/_sim/requests")["requests"]
               if r["method"] in ("PUT", "DELETE", "POST")
               and any(f"/{i}/" in r["path"] for i in foreign)]
    assert touched == []


def _list_pages(sim: VastSim) -> list[str]:
    return [r["path"] for r in sim.admin_get("/_sim/requests")["requests"]
            if r["method"] == "GET" and r["path"].startswith("/api/v1/instances")]


def test_rent_list_and_destroy_ours_by_label_among_30_foreign(vastsim: VastSim, key: Path,
                                                              crowded: list[int]):
    assert len(crowded) == FOREIGN
    client, lifecycle = _lifecycle(vastsim, key, [])
    ours = lifecycle.create(_spec(key)).record
    assert ours["actual_status"] == "running" and ours["id"] not in crowded
    listed = client.list_instances()
    assert sorted(r["id"] for r in listed) == sorted([*crowded, ours["id"]])
    pages = _list_pages(vastsim)
    assert any("after_token=" in p for p in pages)  # the second page was asked for
    assert lifecycle.destroy_labelled(TAG, reason="test") == [ours["id"]]
    assert client.show_instance(ours["id"]) is None
    assert sorted(r["id"] for r in client.list_instances()) == crowded
    _untouched(vastsim, crowded)


def test_a_lost_rent_answer_is_found_by_label_past_the_first_page(vastsim: VastSim, key: Path,
                                                                  crowded: list[int]):
    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"})
    lines: list[str] = []
    _, lifecycle = _lifecycle(vastsim, key, lines)
    ours = lifecycle.create(_spec(key)).record
    assert ours["id"] > max(crowded)  # newest id: on the second page of an id-ordered list
    rents = [r for r in vastsim.admin_get("/_sim/requests")["requests"]
             if r["method"] == "PUT" and "/asks/" in r["path"]]
    assert len(rents) == 1  # found, not rented again
    assert any("looking for the instance by its label" in line for line in lines)
    assert lifecycle.delete(ours["id"], TAG) == [ours["id"]]
    _untouched(vastsim, crowded)
