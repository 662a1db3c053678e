"""Cost estimates, maxCost and run reports end to end: real `inv`, `pulumi`, vastsim, sshd."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests

from providers.api import VastClient
from providers.cost import BYTES_PER_GB, estimate, rates
from providers.query import build_search
from providers.settings import DEFAULT_DISK_GB, DEFAULT_ORDER, DEFAULT_QUERY
from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e

TOTAL = re.compile(r"estimate for offer (\d+): .* total \$([0-9.]+)")
LEDGER_WAIT_S = 2.0


def first_offer(sim: VastSim, disk_gb: float = DEFAULT_DISK_GB) -> dict:
    body = build_search(DEFAULT_QUERY, DEFAULT_ORDER, disk_gb=disk_gb)
    return requests.post(f"{sim.url}/api/v0/bundles/", json=body, headers=sim.headers,
                         timeout=30).json()["offers"][0]


def test_ledger_bills_at_the_rates_the_estimate_uses(vastsim: VastSim):
    """Rent through the client, let it run, and read what vastsim's ledger bills per hour."""
    client = VastClient(vastsim.url, vastsim.api_key)
    offer = first_offer(vastsim, 20)
    iid = client.rent(int(offer["id"]), {"image": "img", "disk": 20.0, "label": "cost"})
    try:
        deadline = time.monotonic() + 30
        while (client.show_instance(iid) or {}).get("actual_status") != "running":
            assert time.monotonic() < deadline, "never running"
            time.sleep(0.1)
        time.sleep(LEDGER_WAIT_S)
        [row] = vastsim.ledger()["instances"]
        est = estimate(offer, disk_gb=20, hours=1, sync_gb=0, pull_gb=0)
        assert row["gpu_rate_per_hour"] == pytest.approx(est.gpu_per_hour)
        assert row["storage_rate_per_hour"] == pytest.approx(est.storage_per_hour)
        assert row["gpu_seconds"] >= LEDGER_WAIT_S
        assert row["dollars"] == pytest.approx(
            (row["gpu_seconds"] * est.gpu_per_hour + row["storage_seconds"] * est.storage_per_hour)
            / 3600)
        r = rates(client.show_instance(iid) or {})  # what the provider exports as `pricing`
        assert (r.gpu_per_hour, r.storage_per_hour) == pytest.approx(
            (est.gpu_per_hour, est.storage_per_hour))
    finally:
        client.destroy_instance(iid)
        client.close()


def test_search_and_dry_run_show_the_estimate_of_the_chosen_offer(inv: Inv, app: Path,
                                                                   ssh_key: Path,
                                                                   vastsim: VastSim):
    offer = first_offer(vastsim)
    listed = inv("search", "--hours", "3", "--limit", "3").stdout
    want = estimate(offer, disk_gb=DEFAULT_DISK_GB, hours=3, sync_gb=1, pull_gb=1)
    m = TOTAL.search(listed.splitlines()[-1])
    assert m and int(m[1]) == offer["id"] and m[2] == f"{want.total:.4f}", listed
    assert "est $ 3h" in listed

    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"  # checked: a real run would need it
    dry = inv("deploy", "--dry-run", "--hours", "3", "--pull-gb", "2", "--image", "img",
              "--src", str(app), "--ssh-key", str(ssh_key), "--", "write", "x").stdout
    sync_gb = sum(p.stat().st_size for p in app.rglob("*") if p.is_file()) / BYTES_PER_GB
    want = estimate(offer, disk_gb=DEFAULT_DISK_GB, hours=3, sync_gb=sync_gb, pull_gb=2)
    assert f"would rent offer {offer['id']}:" in dry
    m = TOTAL.search(dry)
    assert m and int(m[1]) == offer["id"] and m[2] == f"{want.total:.4f}", dry
    assert want.bandwidth_sync > 0

    capped = inv("deploy", "--dry-run", "--hours", "3", "--max-cost", "0.0001", "--image",
                 "img", "--src", str(app), "--ssh-key", str(ssh_key), "--", "write",
                 "x").stdout
    assert "would refuse to rent" in capped and "maxCost $0.0001" in capped
    assert vastsim.ledger()["instances"] == []


def test_max_cost_refuses_up_then_run_writes_a_report(inv: Inv, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:maxCost", "0.0001")
    refused = inv("up", "--stack", stack, check=False)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "exceeds maxCost $0.0001" in out and "Nothing was rented" in out, out
    assert vastsim.ledger()["instances"] == []  # refused before any rent

    inv.pulumi(stack, "config", "set", "vast-gpu:maxCost", "1000")
    inv("up", "--stack", stack)
    # nothing synced: ./run-direct is missing and the shell says 127, which the report keeps
    proc = inv("run", "--stack", stack, "--job", "rj", "--", "hello", check=False)
    assert proc.returncode == 1
    report = json.loads((inv.project / "work_remote" / "rj" / "report.json").read_text())
    assert report["kind"] == "run" and report["outcome"] == "1 of 1 task(s) failed"
    assert list(report["phases_s"]) == ["rent", "running", "ssh", "tasks"]
    assert [t["exit_code"] for t in report["tasks"]] == [127]
    assert report["offer"]["offer_id"] and report["machine"]["machine_id"]
    assert report["dollars"]["estimated"] is True and report["dollars"]["total"] > 0
    assert report["estimate_before_rent"]["total"] <= 1000
    assert "run: report: " in proc.stdout and "task 1: exit 127" in proc.stdout
    inv("down", "--stack", stack)


def test_deploy_writes_the_report_and_prints_its_summary(inv: Inv, app: Path, ssh_key: Path,
                                                         vastsim: VastSim):
    (app / "data.bin").write_bytes(b"x" * 300_000)  # something to count on the way up
    tasks = app / "jobs.txt"
    tasks.write_text("write one\nfail\n")
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    proc = inv("deploy", "--image", "img", "--src", str(app), "--tasks", str(tasks), "--job",
               "dj", "--ssh-key", str(ssh_key), "--hours", "2", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # one task failed
    assert TOTAL.search(out), "the provider's progress line has the estimate"
    report = json.loads((inv.project / "work_remote" / "dj" / "report.json").read_text())
    assert list(report["phases_s"]) == [
        "rent", "running", "ssh", "up", "sync", "tasks", "pull", "destroy"]
    assert [(t["line"], t["exit_code"]) for t in report["tasks"]] == [("write one", 0),
                                                                      ("fail", 4)]
    assert report["outcome"] == "1 of 2 task(s) failed"
    assert report["bytes"]["sent"] >= 300_000 and report["bytes"]["received"] > 0
    [row] = vastsim.ledger()["instances"]
    assert report["machine"]["instance_id"] == row["id"]
    assert report["offer"]["offer_id"] == row["offer_id"]
    dollars = report["dollars"]
    assert dollars["estimated"] is True
    # measured from outside, so a little more than vastsim billed, never less
    assert row["gpu_seconds"] - 0.5 <= dollars["gpu_seconds"] <= row["gpu_seconds"] + 15
    assert dollars["rates"]["gpu_per_hour"] == pytest.approx(row["dph_base"])
    assert "deploy: deploy dj: 1 of 2 task(s) failed" in out
    assert "deploy:   task 2: exit 4" in out and "deploy: report: " in out


def test_sweep_shows_what_a_leftover_has_cost(inv: Inv, vastsim: VastSim):
    offer = first_offer(vastsim, 20)
    made = requests.put(f"{vastsim.url}/api/v0/asks/{offer['id']}/", headers=vastsim.headers,
                        json={"image": "img", "env": {}, "disk": 20.0,
                              "label": "old [vast-gpu:vast-gpu/gone/gpu]"},
                        timeout=30).json()["new_contract"]
    time.sleep(1)
    listed = inv("sweep").stdout
    m = re.search(rf"instance {made}: .* ~\$([0-9.]+) so far \(estimated", listed)
    assert m, listed
    assert 0 < float(m[1]) < 0.01
    inv("sweep", "--yes")
    assert vastsim.billing_now() == []


def test_search_dry_run_and_the_rent_choose_the_same_offer(inv: Inv, app: Path, vastsim: VastSim,
                                                           ssh_key: Path):
    """One selector: with maxPricePerHour, maxCost and bidPrice all set, `inv search`,
    `deploy --dry-run` and `pulumi up` name the same offer and the same estimate."""
    offers = requests.post(f"{vastsim.url}/api/v0/bundles/", headers=vastsim.headers, json=(
        build_search(DEFAULT_QUERY, DEFAULT_ORDER, disk_gb=20, offer_type="bid")),
        timeout=30).json()["offers"]
    bids = sorted(o["min_bid"] for o in offers)
    bid = bids[len(bids) // 2]  # about half of them are above it
    prices = sorted(o["dph_total"] for o in offers)
    stack = inv.new_stack(ssh_key)
    for key, value in {"disk": "20", "bidPrice": f"{bid}", "expectedHours": "2",
                       "maxPricePerHour": f"{prices[-3]}", "maxCost": "1000",
                       "expectedSyncGB": "0"}.items():
        inv.pulumi(stack, "config", "set", f"vast-gpu:{key}", value)
    searched = inv("search", "--stack", stack).stdout
    dry = inv("deploy", "--dry-run", "--base", stack, "--no-sync", "--", "hello").stdout
    wanted = re.search(r"would rent offer (\d+):", searched)
    assert wanted, searched
    assert f"would rent offer {wanted.group(1)}:" in dry
    assert "min_bid above the bid" in searched and "min_bid above the bid" in dry
    estimate_line = next(line for line in searched.splitlines() if line.startswith("chosen"))
    proc = inv("up", "--stack", stack)
    outputs = json.loads(inv.pulumi(stack, "stack", "output", "--json"))
    assert str(outputs["offer_id"]) == wanted.group(1)
    assert TOTAL.search(estimate_line).group(2) == f"{outputs['estimate']['total']:.4f}"
    assert "min_bid above the bid" in proc.stdout + proc.stderr  # the provider says it too
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []


def test_search_and_a_dry_run_read_the_stack_config_once(inv: Inv, ssh_key: Path):
    """One owner of the settings: `inv search --stack X` once ran 8 `pulumi config get`, a dry
    run up to 11; each now reads the stack's config in one `pulumi config --json`."""
    stack = inv.new_stack(ssh_key)
    for key, value in {"maxPricePerHour": "2.5", "maxCost": "50", "bidPrice": "0.3",
                       "disk": "40"}.items():
        inv.pulumi(stack, "config", "set", f"vast-gpu:{key}", value)
    for args in (("search", "--stack", stack),
                 ("deploy", "--dry-run", "--base", stack, "--no-sync", "--", "hello")):
        proc, calls = inv.traced(*args)
        assert "would rent offer" in proc.stdout, proc.stdout
        reads = [argv for argv in calls if argv[1] == "config"]
        assert reads == [["pulumi", "config", "--json", "--non-interactive", "--stack", stack]], (
            args, calls)
