"""The invoke tasks end to end: real `inv`, real `pulumi`, vastsim, real sshd."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from providers.api import VastClient
from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim
from workflow.pulumi_env import ROOT

pytestmark = pytest.mark.e2e


def test_up_status_sync_run_pull_sweep_down(inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:onstart", "echo onstart-said-hello")
    inv("up", "--stack", stack)
    [instance_id] = vastsim.billing_now()

    status = inv("status", "--stack", stack).stdout
    assert f"instance {instance_id}" in status and ": running" in status
    logs = inv("logs", "--stack", stack, "--tail", "20")
    assert "onstart-said-hello" in logs.stdout
    assert f"logs: instance {instance_id}, last 20 lines" in logs.stderr

    first = inv("sync", "--stack", stack, "--src", str(app)).stdout
    assert re.search(r"sync: \d+ files sent", first), first
    again = inv("sync", "--stack", stack, "--src", str(app)).stdout
    assert re.search(r"sync: up to date, \d+ files", again), again
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
    results = inv.project / "work_remote" / "j1" / "work"
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


def test_deploy_dry_run_prints_every_step_and_rents_nothing(inv: Inv, app: Path, ssh_key: Path,
                                                            vastsim: VastSim):
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"  # checked: a real run would need it
    proc = inv("deploy", "--dry-run", "--image", "img", "--src", str(app), "--ssh-key",
               str(ssh_key), "--", "write", "x")
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
    assert (inv.project / "work_remote" / "dj" / "work" / "out" / "two.txt").read_text() == "two\n"
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


def test_count_two_and_down_of_one_instance(inv: Inv, app: Path, ssh_key: Path,
                                            vastsim: VastSim):
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:count", "2")
    inv("up", "--stack", stack)
    billing = sorted(vastsim.billing_now())
    assert len(billing) == 2
    status = inv("status", "--stack", stack).stdout
    assert all(f"instance {i}" in status for i in billing)
    ambiguous = inv("run", "--stack", stack, "--", "x", check=False)
    assert ambiguous.returncode == 1 and "pass --instance ID" in ambiguous.stderr
    for iid in billing:  # each instance reachable by its id, as typed on the command line
        inv("sync", "--stack", stack, "--instance", str(iid), "--src", str(app))
        ran = inv("run", "--stack", stack, "--instance", str(iid), "--job", "two",
                  "--", "write", f"w{iid}")
        assert f"wrote w{iid}" in ran.stdout
        inv("pull", "--instance", str(iid), "--job", f"two-{iid}")  # the stack found by id
        pulled = inv.project / "work_remote" / f"two-{iid}" / "work"
        assert (pulled / "out" / f"w{iid}.txt").exists()
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
def test_sync_takes_the_stack_setting_or_where_you_are_never_the_tool(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim, tmp_path: Path
):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    refused = inv("sync", "--stack", stack, cwd=ROOT, check=False)
    assert refused.returncode == 1 and "vast-gpu's own checkout" in refused.stderr

    synced = inv("sync", "--stack", stack, cwd=app).stdout
    assert f"sync: source {app} (the current directory)" in synced
    (app / "jobs.txt").write_text("write here\n")
    ran = inv("run", "--stack", stack, "--tasks", "jobs.txt", cwd=app)  # found where you are
    assert "wrote here" in ran.stdout
    job = re.search(r"run: job (\S+):", ran.stdout)[1]
    pulled = inv("pull", "--stack", stack).stdout  # no --job: the run's job, same folder
    assert f"pull: job {job} (the stack's latest job)" in pulled
    assert re.search(r"^pull: \d+ files fetched \(", pulled, re.M), pulled  # as sync says it
    results = inv.project / "work_remote" / job
    assert (results / "work" / "out" / "here.txt").read_text() == "here\n"
    assert (results / "logs").is_dir()

    other = tmp_path / "other"
    other.mkdir()
    (other / "run-direct").write_text('#!/bin/sh\necho "other app: $*"\n')
    (other / "run-direct").chmod(0o755)
    inv.pulumi(stack, "config", "set", "vast-gpu:src", "../../other")  # from stacks/
    synced = inv("sync", "--stack", stack, cwd=ROOT).stdout
    assert f"sync: source {other} (stack {stack!r} setting vast-gpu:src)" in synced
    assert "other app: x" in inv("run", "--stack", stack, "--", "x").stdout
    inv("down", "--stack", stack)


@pytest.mark.parametrize("job", ["../../escape", "/tmp/abs-job"])
def test_a_job_name_that_would_leave_work_remote_is_refused(inv: Inv, ssh_key: Path, job: str):
    stack = inv.new_stack(ssh_key)
    for task, rest in (("pull", []), ("run", ["--", "x"])):
        proc = inv(task, "--stack", stack, "--job", job, *rest, check=False)
        assert proc.returncode == 1 and "one folder name under work_remote/" in proc.stderr
    assert not (inv.project / "work_remote").exists()
    assert not Path("/tmp/abs-job").exists()


def test_a_vanished_instance_is_named_at_once_and_up_rents_again(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    stack = inv.new_stack(ssh_key)
    inv("up", "--stack", stack)
    [gone] = vastsim.billing_now()
    VastClient(vastsim.url, vastsim.api_key).destroy_instance(gone)  # the watchdog fired, say
    status = inv("status", "--stack", stack).stdout
    assert f"GONE: `inv up --stack {stack}` refreshes and rents again" in status
    started = time.monotonic()
    proc = inv("sync", "--stack", stack, "--src", str(app), check=False)
    assert proc.returncode == 1
    assert f"instance {gone} of stack {stack!r} is gone" in proc.stderr, proc.stderr
    assert f"`inv up --stack {stack}`" in proc.stderr
    assert time.monotonic() - started < 15  # the API said so: no minute of SSH retries
    inv("up", "--stack", stack)
    [fresh] = vastsim.billing_now()
    assert fresh != gone
    inv("sync", "--stack", stack, "--src", str(app))
    inv("down", "--stack", stack)
    assert vastsim.billing_now() == []


def test_sweep_and_instances_talk_to_the_selected_stacks_api(inv: Inv, ssh_key: Path,
                                                             vastsim: VastSim):
    """Account-wide tasks read the selected stack's settings (its apiUrl here), not none."""
    url = inv.env.pop("VAST_URL")
    stack = inv.new_stack(ssh_key)
    inv.pulumi(stack, "config", "set", "vast-gpu:apiUrl", url)
    inv.pulumi(stack, "stack", "select", stack, on_stack=False)
    assert "no leftover instances" in inv("sweep").stdout
    assert "no instances: nothing bills" in inv("instances").stdout


def test_files_the_instance_writes_never_replace_the_runs_own_logs_and_report(
    inv: Inv, app: Path, ssh_key: Path, vastsim: VastSim
):
    """The task writes /work/logs/01-forge.log, /work/logs/summary.json and /work/report.json:
    the pull brings them into work/, beside (not over) what this side wrote."""
    inv.env["PULUMI_CONFIG_PASSPHRASE"] = "users-own"
    proc = inv("deploy", "--image", "img", "--src", str(app), "--job", "fg",
               "--ssh-key", str(ssh_key), "--", "forge", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job = inv.project / "work_remote" / "fg"
    assert (job / "logs" / "01-forge.log").read_text() == "honest\n"
    assert '"total": 1' in (job / "logs" / "summary.json").read_text()
    assert '"outcome": "ok"' in (job / "report.json").read_text()
    for name in ("logs/01-forge.log", "logs/summary.json", "report.json"):
        assert (job / "work" / name).read_text() == "forged\n"
