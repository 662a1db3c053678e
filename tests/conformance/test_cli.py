"""The official CLI (vastai 1.9.1) against vastsim: each command's printed result and what it
did to the account. The CLI exits 0 after most HTTP errors, so the output is what is checked."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from providers.lifecycle import InstanceSpec
from providers.query import build_search
from providers.settings import parse_settings
from tests.conformance.conftest import CliRun
from tests.vastsim.helpers import Api
from vastsim.testing import VastSim

pytestmark = pytest.mark.sshd


def _json(proc: subprocess.CompletedProcess[str]) -> object:
    return json.loads(proc.stdout)


def _ledger_row(sim: VastSim, iid: int) -> dict:
    return next(r for r in sim.ledger()["instances"] if r["id"] == iid)


def _billing(sim: VastSim, iid: int) -> tuple[bool, bool]:
    """(GPU, storage) accruing for the instance, as vastsim's ledger says."""
    row = _ledger_row(sim, iid)
    return row["billing_gpu"], row["billing_storage"]


def test_show_user(vastai: CliRun, tmp_path: Path) -> None:
    out = vastai("show", "user", "--raw")
    user = _json(out)
    assert user["email"] == "vastsim@localhost" and user["credit"] == 100.0
    assert not (tmp_path / "cfg" / "vastai" / "vast_api_key").exists()  # --api-key, not stored


def test_the_cli_asks_vastsim_for_its_gpu_names(vastai: CliRun, vastsim: VastSim,
                                                tmp_path: Path) -> None:
    """Every run builds `--gpu-name` choices from VAST_URL, not --url: vastsim must answer."""
    vastai("show", "user", "--raw")
    asked = [(r["method"], r["path"], r["status"])
             for r in vastsim.admin_get("/_sim/requests")["requests"]]
    assert ("GET", "/api/v0/gpu_names/unique/", 200) in asked, asked
    cached = json.loads((tmp_path / "cache" / "vastai" / "gpu_names_cache.json").read_text())
    assert "RTX 4090" in cached["gpu_names"]  # vastsim's names, cached where the test says


def test_search_offers_sends_a_query_vastsim_answers_as_asked(vastai: CliRun) -> None:
    offers = _json(vastai("search", "offers", "num_gpus=1 gpu_ram>=20 reliability>0.95",
                          "-o", "dph+", "--raw"))
    assert offers, "no offer matched"
    for offer in offers:
        assert offer["num_gpus"] == 1 and offer["gpu_ram"] >= 20_000
        assert offer["reliability"] > 0.95 and offer["verification"] == "verified"
        assert offer["rentable"] is True
    prices = [o["dph_total"] for o in offers]
    assert prices == sorted(prices)
    named = _json(vastai("search", "offers", "gpu_name=RTX_3090 num_gpus=1", "--raw"))
    assert named and {o["gpu_name"] for o in named} == {"RTX 3090"}


SEARCHES = [
    # (the CLI's words after `search offers`, what build_search is given for the same)
    (["gpu_ram>=20 num_gpus=1 gpu_name=RTX_4090", "-o", "dph+", "--storage", "7"],
     {"query": "gpu_ram>=20 num_gpus=1 gpu_name=RTX_4090", "order": "dph+", "disk_gb": 7.0}),
    (["reliability>0.98 geolocation in [US,CA]", "-i", "--limit", "3"],
     {"query": "reliability>0.98 geolocation in [US,CA]", "order": "score-", "disk_gb": 5.0,
      "offer_type": "interruptible", "limit": 3}),
    (["-n", "num_gpus>=2 rentable=any", "-o", "num_gpus-,dph"],
     {"query": "num_gpus>=2 rentable=any", "order": "num_gpus-,dph", "disk_gb": 5.0,
      "defaults": False}),
]


@pytest.mark.parametrize(("words", "ours"), SEARCHES, ids=[" ".join(w) for w, _ in SEARCHES])
def test_our_search_body_is_the_one_the_cli_posts(vastai: CliRun, vastsim: VastSim,
                                                  words: list[str], ours: dict) -> None:
    """The whole body `search offers --explain` prints and posts, order/type/storage too."""
    out = vastai("--explain", "search", "offers", *words).stdout
    lines = out.splitlines()
    theirs = ast.literal_eval(lines[lines.index("request json: ") + 1])
    assert build_search(**ours) == theirs
    asked = [(r["method"], r["path"], r["status"])
             for r in vastsim.admin_get("/_sim/requests")["requests"]]
    assert ("POST", "/api/v0/bundles/", 200) in asked, asked


def test_an_instance_from_create_to_destroy(vastai: CliRun, vastsim: VastSim,
                                            tmp_path: Path) -> None:
    offer = _json(vastai("search", "offers", "num_gpus=1", "-o", "dph+", "--raw"))[0]["id"]
    made = _json(vastai("create", "instance", str(offer), "--image", "vastai/test:latest",
                        "--disk", "20", "--ssh", "--direct", "--label", "referee",
                        "--onstart-cmd", "echo hello-from-the-referee", "--raw"))
    assert made["success"] is True
    iid = made["new_contract"]
    assert vastsim.billing_now() == [iid]
    row = _ledger_row(vastsim, iid)
    assert (row["offer_id"], row["disk"]) == (offer, 20.0)  # what the CLI asked for
    assert _billing(vastsim, iid) == (True, True)  # GPU and storage

    shown = _json(vastai("show", "instance", str(iid), "--raw"))
    assert shown["id"] == iid and shown["label"] == "referee" and shown["disk_space"] == 20.0

    assert f"label for {iid} set to renamed." in vastai("label", "instance", str(iid),
                                                        "renamed").stdout
    assert _json(vastai("show", "instance", str(iid), "--raw"))["label"] == "renamed"

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    attached = vastai("attach", "ssh", str(iid), key.with_suffix(".pub").read_text().strip())
    assert "SSH key attached successfully" in attached.stdout

    url = vastai("ssh-url", str(iid)).stdout.strip()
    match = re.fullmatch(r"ssh://(\w+)@([\d.]+):(\d+)", url)
    assert match, url
    user, host, port = match.groups()
    login = subprocess.run(
        ["ssh", "-i", str(key), "-p", port, "-o", "StrictHostKeyChecking=no",
         "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "-o", "BatchMode=yes",
         f"{user}@{host}", "echo logged-in-as-$(id -un) in $(pwd)"],
        capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert f"logged-in-as-{user}" in login.stdout

    logs = vastai("logs", str(iid))
    assert "hello-from-the-referee" in logs.stdout, logs.stdout + logs.stderr

    assert f"stopping instance {iid}." in vastai("stop", "instance", str(iid)).stdout
    assert _json(vastai("show", "instance", str(iid), "--raw"))["actual_status"] == "stopped"
    assert _billing(vastsim, iid) == (False, True)  # a stopped instance bills its disk only
    assert f"starting instance {iid}." in vastai("start", "instance", str(iid)).stdout
    deadline = time.monotonic() + 30  # waited on vastsim directly: a CLI run takes seconds
    while next(i for i in vastsim.instances() if i["id"] == iid)["actual_status"] != "running":
        assert time.monotonic() < deadline, "the started instance never ran again"
        time.sleep(0.05)
    assert _json(vastai("show", "instance", str(iid), "--raw"))["actual_status"] == "running"
    assert _billing(vastsim, iid) == (True, True)

    assert f"destroying instance {iid}." in vastai("destroy", "instance", str(iid), "-y").stdout
    assert vastsim.billing_now() == []
    assert _billing(vastsim, iid) == (False, False)


def test_show_instances_pages_through_v1(vastai: CliRun, vastsim: VastSim) -> None:
    foreign = vastsim.seed(27)
    offer = _json(vastai("search", "offers", "num_gpus=1", "--raw"))[0]["id"]
    mine = _json(vastai("create", "instance", str(offer), "--image", "img", "--disk", "10",
                        "--ssh", "--direct", "--raw"))["new_contract"]
    rows = _json(vastai("show", "instances", "--raw"))
    assert sorted(r["id"] for r in rows) == sorted([*foreign, mine])
    paths = [r["path"] for r in vastsim.admin_get("/_sim/requests")["requests"]]
    v1 = [p for p in paths if p.startswith("/api/v1/instances")]
    assert len(v1) >= 2 and any("after_token=" in p for p in v1), v1  # more than one page
    assert not any(p.startswith("/api/v0/instances/?") or p == "/api/v0/instances/"
                   for p in paths)  # never the v0 list, which a new account gets 410 from
    vastai("destroy", "instance", str(mine), "-y")


def test_a_bid_under_min_bid_waits_until_change_bid_raises_it(vastai: CliRun,
                                                              vastsim: VastSim) -> None:
    """`create instance --bid_price` under min_bid, then `change bid` over it (bids.py)."""
    offer = _json(vastai("search", "offers", "num_gpus=1", "-i", "-o", "dph+", "--raw"))[0]
    low, high = round(offer["min_bid"] / 2, 4), round(offer["min_bid"] * 2, 4)
    iid = _json(vastai("create", "instance", str(offer["id"]), "--image", "img", "--disk", "10",
                       "--ssh", "--direct", "--bid_price", str(low), "--raw"))["new_contract"]
    shown = _json(vastai("show", "instance", str(iid), "--raw"))
    assert (shown["actual_status"], shown["intended_status"]) == ("scheduling", "running")
    assert _billing(vastsim, iid) == (False, True)  # waiting: its disk bills, no GPU
    changed = vastai("change", "bid", str(iid), "--price", str(high))
    assert changed.stdout.strip() == "Per gpu bid price changed", changed.stdout + changed.stderr
    deadline = time.monotonic() + 30
    while next(i for i in vastsim.instances() if i["id"] == iid)["actual_status"] != "running":
        assert time.monotonic() < deadline, "the raised bid never ran"
        time.sleep(0.05)
    assert _billing(vastsim, iid) == (True, True)
    assert _ledger_row(vastsim, iid)["gpu_rate_per_hour"] == pytest.approx(high)
    vastai("destroy", "instance", str(iid), "-y")


def test_an_unknown_instance_is_an_error_the_cli_prints(vastai: CliRun) -> None:
    """The CLI exits 0 after a 404 on destroy and label: what it prints is the check."""
    shown = vastai("show", "instance", "999999", check=False)
    assert shown.returncode == 1 and "Instance 999999 not found" in shown.stderr, shown
    for words in (["destroy", "instance", "999999", "-y"], ["label", "instance", "999999", "x"]):
        out = vastai(*words)
        assert "Failed with error 404" in out.stderr and "999999" in out.stderr, out


RENTS = [
    {"image": "vastai/test:latest", "disk": 20, "label": "job"},
    {"image": "img:1", "disk": 12.5, "bidPrice": 0.05, "env": {"A": "1", "B": "x y"}},
]


@pytest.mark.parametrize("raw", RENTS, ids=["on-demand", "bid-with-env"])
def test_our_rent_body_is_the_clis_create_instance_body(vastai: CliRun, vastsim: VastSim,
                                                        raw: dict) -> None:
    """Ours is `create instance --ssh --direct --cancel-unavail` with the same values."""
    ours = InstanceSpec(parse_settings(raw), tag="vast-gpu:p/s/gpu",
                        ssh_public_key="k").rent_body()
    offer = Api(vastsim).search()[0]["id"]  # asked directly: a CLI run takes seconds
    words = ["create", "instance", str(offer), "--image", ours["image"], "--disk",
             str(ours["disk"]), "--ssh", "--direct", "--cancel-unavail", "--label",
             ours["label"], "--onstart-cmd", ours["onstart"]]
    if ours["price"] is not None:
        words += ["--bid_price", str(ours["price"])]
    if ours["env"]:
        words += ["--env", " ".join(f"-e {k}='{v}'" for k, v in ours["env"].items())]
    lines = vastai("--explain", *words).stdout.splitlines()
    theirs = ast.literal_eval(lines[lines.index("request json: ") + 1])
    assert ours == theirs
