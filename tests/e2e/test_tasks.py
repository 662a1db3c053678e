"""The invoke tasks end to end: real `inv`, real `pulumi`, vastsim, real sshd."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e


def test_up_status_sync_run_pull_sweep_down(inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    [instance_id] = vastsim.billing_now()

    status = inv("status", "--stack", stack).stdout
    assert f"instance {instance_id}" in status and ": running" in status

    inv("sync", "--stack", stack, "--src", str(app))
    tasks = app / "jobs.txt"
    tasks.write_text("# comment\n\nwrite alpha\nfail\nwrite 'beta'\n")
    ran = inv("run", "--stack", stack, "--tasks", str(tasks), "--job", "j1", check=False)
    assert ran.returncode == 1  # one task failed; the batch went on
    assert "wrote alpha" in ran.stdout and "wrote beta" in ran.stdout
    logs = inv.project / "work_remote" / "j1" / "logs"
    assert logs.is_dir() and any(logs.iterdir())

    one = inv("run", "--stack", stack, "--job", "j1", "--", "hello", "two words")
    assert "args(2): hello two words" in one.stdout  # the words arrive as the user gave them

    inv("pull", "--stack", stack, "--job", "j1")
    results = inv.project / "work_remote" / "j1"
    assert (results / "out" / "alpha.txt").read_text() == "alpha\n"
    assert (results / "out" / "beta.txt").read_text() == "beta\n"

    swept = inv("sweep").stdout
    assert "no leftover instances" in swept

    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []


def test_bad_tasks_line_is_an_error_naming_the_line(inv: Inv, app: Path, ssh_key: Path):
    bad = app / "bad.txt"
    bad.write_text("write ok\nwrite 'unclosed\n")
    stack = inv.new_stack(ssh_key)
    proc = inv("run", "--stack", stack, "--tasks", str(bad), check=False)
    assert proc.returncode == 1
    assert f"{bad}:2" in proc.stderr + proc.stdout


def test_deploy_dry_run_prints_every_step_and_rents_nothing(inv: Inv, app: Path, vastsim: VastSim):
    proc = inv("deploy", "--dry-run", "--image", "img", "--src", str(app), "--", "write", "x")
    assert "dry run: nothing rented" in proc.stdout
    assert "pulumi up" in proc.stdout and "sync" in proc.stdout and "pull workDir" in proc.stdout
    assert vastsim.ledger()["instances"] == []


def test_deploy_runs_the_job_and_tears_down(inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim):
    tasks = app / "jobs.txt"
    tasks.write_text("write one\nwrite two\n")
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"  # a job stack is a real stack
    proc = inv("deploy", "--image", "img", "--src", str(app), "--tasks", str(tasks),
               "--job", "dj", "--ssh-key", str(ssh_key), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (inv.project / "work_remote" / "dj" / "out" / "two.txt").read_text() == "two\n"
    assert "nothing of this job bills any more" in proc.stdout
    assert vastsim.billing_now() == []
    assert len(vastsim.ledger()["instances"]) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_deploy_killed_mid_run_leaves_nothing_billing(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, sig: signal.Signals
):
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    proc = subprocess.Popen(
        inv.argv("deploy", "--image", "img", "--src", str(app), "--job", "killed",
                 "--ssh-key", str(ssh_key), "--", "sleep", "120"),
        env=inv.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    while not any((Path(i["root"]) / "work" / "sleeping").exists()
                  for i in vastsim.internals() if i.get("root")):
        assert time.monotonic() < deadline, "the task never started"
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode != 0
    assert "nothing of this job bills any more" in out
    assert vastsim.billing_now() == []
    stacks = inv.pulumi("x", "stack", "ls", "--json", on_stack=False)
    assert "killed" not in stacks


def test_sweep_finds_and_destroys_what_no_stack_knows(inv: Inv, vastsim: VastSim):
    offer = requests.post(f"{vastsim.url}/api/v0/bundles/", json={"limit": 1},
                          headers=vastsim.headers, timeout=30).json()["offers"][0]
    made = requests.put(f"{vastsim.url}/api/v0/asks/{offer['id']}/", headers=vastsim.headers,
                        json={"image": "img", "env": {}, "disk": 20.0,
                              "label": "old run [vast-gpu:vast-gpu/gone-stack/gpu]"},
                        timeout=30).json()["new_contract"]
    listed = inv("sweep").stdout
    assert f"instance {made}: stack 'gone-stack'" in listed and "--yes" in listed
    assert vastsim.billing_now() == [made]
    inv("sweep", "--yes")
    assert vastsim.billing_now() == []


def test_search_shows_a_table_of_matching_offers(inv: Inv, vastsim: VastSim):
    proc = inv("search", "--query", "gpu_ram >= 40 num_gpus = 1", "--order", "dph+",
               "--limit", "5")
    lines = proc.stdout.splitlines()
    # the count is the provider's: every offer a rent could take, not the rows shown
    count = int(lines[0].split()[0])
    assert count > 5 and lines[0].startswith(f"{count} offer(s) for: gpu_ram >= 40 num_gpus = 1")
    assert "the first 5 shown" in lines[0]
    header, rows = lines[1], lines[2:7]
    assert lines[-2].startswith("would rent offer ")
    assert lines[-1].startswith("chosen (first) estimate for offer ")  # see test_cost_report

    def column(name: str, following: str) -> list[float]:
        start, end = header.index(name), header.index(following)
        return [float(row[start:end]) for row in rows]

    assert len(rows) == 5
    assert all(v >= 40 for v in column("vram GB", "$/h"))
    prices = column("$/h", "reliab")
    assert prices == sorted(prices)
    assert vastsim.ledger()["instances"] == []  # searching rents nothing


def test_shell_opens_in_app_dir(inv: Inv, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    proc = subprocess.run(inv.argv("shell", "--stack", stack), env=inv.env, input="pwd\nexit\n",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "/app" in proc.stdout.splitlines()
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []


def test_count_two_and_down_of_one_instance(inv: Inv, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:count", "2")
    inv("up", "--stack", stack)
    billing = sorted(vastsim.billing_now())
    assert len(billing) == 2
    status = inv("status", "--stack", stack).stdout
    assert all(f"instance {i}" in status for i in billing)
    ambiguous = inv("run", "--stack", stack, "--", "x", check=False)
    assert ambiguous.returncode == 1 and "pass --instance ID" in ambiguous.stderr
    inv("down", "--stack", stack, "--instance", str(billing[0]))
    assert vastsim.billing_now() == [billing[1]]
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []


def test_a_rent_lost_with_its_look_up_is_found_and_destroyed_by_sweep(
    inv: Inv, vastsim: VastSim, ssh_key: Path
):
    """The money case: the rent's answer is lost and the instance list fails for longer than
    the look-up waits. The error says an instance may bill and names `inv sweep`; once the
    API answers again, `inv sweep --yes` finds it by its label and nothing bills."""
    from providers.api import RetryPolicy, VastClient
    from providers.errors import MaybeBillingError
    from providers.labels import resource_tag
    from providers.lifecycle import InstanceSpec, Lifecycle
    from providers.settings import parse_settings

    vastsim.add_faults({"kind": "server_error", "count": 1, "status": 502, "after": True,
                        "method": "PUT", "path": "/asks/"},
                       {"kind": "server_error", "count": 1000, "skip": 1, "status": 503,
                        "method": "GET", "path": "/api/v1/instances"})
    client = VastClient(vastsim.url, vastsim.api_key, retry=RetryPolicy(first_delay_s=0.01))
    lifecycle = Lifecycle(client, progress=lambda _l: None, ssh_probe=lambda h, p: None,
                          poll_first_s=0.05, poll_max_s=0.2, lookup_deadline_s=1.0)
    spec = InstanceSpec(parse_settings({"image": "img", "disk": 20}),
                        tag=resource_tag("vast-gpu", "local-lost", "gpu"),
                        ssh_public_key=ssh_key.with_suffix(".pub").read_text())
    with pytest.raises(MaybeBillingError, match="inv sweep"):
        lifecycle.create(spec)
    [lost] = vastsim.billing_now()
    vastsim.clear_faults()  # the API recovers
    listed = inv("sweep").stdout
    assert f"instance {lost}: stack 'local-lost'" in listed
    inv("sweep", "--yes")
    assert vastsim.billing_now() == []
