"""VastInstance with the real pulumi CLI against vastsim: the money-safe lifecycle end to end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from remote.ssh import login_probe
from tests.e2e.conftest import ROOT, project_copy, require_pulumi
from tests.e2e.pulumi_cli import PulumiCli
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e

INSTANCE_TYPE = "pulumi-python:dynamic/vast:Instance"


def up(stack: PulumiCli) -> str:
    return stack.run("up", "--yes", "--non-interactive", "--skip-preview")


def show(sim: VastSim, instance_id: int) -> dict | None:
    import requests

    r = requests.get(f"{sim.url}/api/v0/instances/{instance_id}/", headers=sim.headers, timeout=30)
    return r.json()["instances"]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (pulumi puts plugins in their own groups)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def rent_and_delete_order(sim: VastSim) -> list[tuple[str, str]]:
    return [
        (r["method"], r["path"]) for r in sim.admin_get("/_sim/requests")["requests"]
        if (r["method"], r["path"].split("/")[3]) in {("PUT", "asks"), ("DELETE", "instances")}
    ]


def test_up_refresh_label_replace_destroy(vast_stack: PulumiCli, sim: VastSim, ssh_key: Path):
    out = up(vast_stack)
    assert "ssh ready at 127.0.0.1:" in out  # provider progress reaches the pulumi output
    outs = vast_stack.outputs()
    first = outs["instance_id"]
    record = show(sim, first)
    assert record["actual_status"] == "running"
    assert outs["ssh_host"] == "127.0.0.1"
    assert outs["ssh_port"] == int(record["ports"]["22/tcp"][0]["HostPort"])
    assert outs["gpu_name"] == record["gpu_name"]
    assert outs["machine_id"] == record["machine_id"]
    [rent] = [path for method, path in rent_and_delete_order(sim) if method == "PUT"]
    assert outs["offer_id"] == int(rent.split("/")[4])  # /api/v0/asks/<offer>/
    assert outs["ssh_command"] == f"ssh -p {outs['ssh_port']} root@127.0.0.1"
    assert login_probe(outs["ssh_host"], outs["ssh_port"], ssh_key) is None
    assert sim.billing_now() == [first]

    vast_stack.run("refresh", "--yes", "--non-interactive")
    [res] = vast_stack.resources(INSTANCE_TYPE)
    assert res["id"] == str(first)
    assert res["outputs"]["status"] == "running"

    vast_stack.run("config", "set", "vast-gpu:label", "whisper run 3")
    up(vast_stack)
    assert vast_stack.outputs()["instance_id"] == first
    tag = f"vast-gpu:vast-gpu/{vast_stack.stack}/gpu"
    assert show(sim, first)["label"] == f"whisper run 3 [{tag}]"

    vast_stack.run("config", "set", "vast-gpu:image", "pytorch/pytorch:latest")
    up(vast_stack)
    second = vast_stack.outputs()["instance_id"]
    assert second != first
    assert show(sim, first) is None
    assert show(sim, second)["image_uuid"] == "pytorch/pytorch:latest"
    order = rent_and_delete_order(sim)
    assert order.index(("DELETE", f"/api/v0/instances/{first}/")) < len(order) - 1
    assert order[-1][0] == "PUT"  # the new rent came after the old instance was destroyed
    assert sim.billing_now() == [second]

    out = vast_stack.run("destroy", "--yes", "--non-interactive")
    assert "nothing of this resource bills" in out
    assert sim.billing_now() == []
    assert vast_stack.resources(INSTANCE_TYPE) == []
    billed = {row["id"]: row for row in sim.ledger()["instances"]}
    assert billed[first]["dollars"] > 0 and billed[second]["dollars"] > 0


def test_offer_taken_falls_through_to_the_next(vast_stack: PulumiCli, sim: VastSim):
    sim.add_faults({"kind": "offer_taken", "count": 1})
    out = up(vast_stack)
    assert "was taken meanwhile; trying the next one" in out
    assert show(sim, vast_stack.outputs()["instance_id"])["actual_status"] == "running"


def test_stuck_loading_destroys_and_fails_with_the_story(vast_stack: PulumiCli, sim: VastSim):
    sim.add_faults({"kind": "stuck_loading", "count": 5})
    vast_stack.run("config", "set", "vast-gpu:readyTimeout", "3")
    vast_stack.run("config", "set", "vast-gpu:maxAttempts", "2")
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code != 0
    assert "no instance became ready after 2 attempt(s)" in out
    assert "offers tried:" in out
    assert "loading" in out
    assert out.count("destroyed (verified)") >= 2
    assert sim.billing_now() == []
    rows = sim.ledger()["instances"]
    assert len(rows) == 2 and all(row["gpu_seconds"] == 0 for row in rows)  # never ran
    assert vast_stack.resources(INSTANCE_TYPE) == []


def test_exited_instance_shows_vasts_status_msg(vast_stack: PulumiCli, sim: VastSim):
    sim.add_faults({"kind": "exited", "count": 3, "status_msg": "OCI runtime create failed: x"})
    vast_stack.run("config", "set", "vast-gpu:maxAttempts", "1")
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code != 0
    assert "went exited: OCI runtime create failed: x" in out
    assert sim.billing_now() == []


def test_rate_limit_and_server_error_bursts_are_retried(vast_stack: PulumiCli, sim: VastSim):
    sim.add_faults(
        {"kind": "rate_limit", "count": 3, "body": "both"},
        {"kind": "server_error", "count": 2, "status": 502, "method": "GET"},
    )
    up(vast_stack)
    assert show(sim, vast_stack.outputs()["instance_id"])["actual_status"] == "running"
    assert sim.admin_get("/_sim/faults")["faults"] == []  # every fault did fire


def test_bad_api_key_is_a_clear_error_and_rents_nothing(vast_stack: PulumiCli, sim: VastSim):
    vast_stack.extra_env = {**vast_stack.extra_env, "VAST_API_KEY": "not-the-key"}
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code != 0
    assert "auth_error" in out and "Invalid user key" in out
    assert "not-the-key" not in out
    assert sim.ledger()["instances"] == []


def test_bad_query_fails_preview_naming_the_token(vast_stack: PulumiCli, sim: VastSim):
    vast_stack.run("config", "set", "vast-gpu:query", "gpu_ram => 20")
    code, out = vast_stack.attempt("preview", "--non-interactive")
    assert code != 0
    assert "'=>'" in out and "position" in out
    assert sim.ledger()["instances"] == []


def test_instance_destroyed_behind_our_back(vast_stack: PulumiCli, sim: VastSim):
    import requests

    up(vast_stack)
    first = vast_stack.outputs()["instance_id"]
    requests.delete(f"{sim.url}/api/v0/instances/{first}/", headers=sim.headers, json={},
                    timeout=30).raise_for_status()
    vast_stack.run("refresh", "--yes", "--non-interactive")
    assert vast_stack.resources(INSTANCE_TYPE) == []
    up(vast_stack)
    second = vast_stack.outputs()["instance_id"]
    assert second != first
    assert sim.billing_now() == [second]


def test_sigkill_after_rent_leftover_cleaned_by_next_up(vast_stack: PulumiCli, sim: VastSim):
    sim.add_faults({"kind": "ssh_refuse", "count": 1, "seconds": 60})
    proc = vast_stack.popen("up", "--yes", "--non-interactive", "--skip-preview")
    deadline = time.monotonic() + 60
    while not sim.billing_now():
        assert time.monotonic() < deadline, "pulumi up never rented"
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    [orphan] = sim.billing_now()
    kill_tree(proc.pid)  # the laptop dies: CLI, engine, language host and provider at once
    proc.wait(timeout=30)
    assert sim.billing_now() == [orphan]  # nobody tracks it now

    vast_stack.run("cancel", "--yes")  # what the user does after a crash: drop the stale lock
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code == 0, out
    assert f"instance {orphan} carries label" in out, out
    [res] = vast_stack.resources(INSTANCE_TYPE)
    assert sim.billing_now() == [int(res["id"])]
    assert int(res["id"]) != orphan


GHCR_TOKEN = "ghp_registry-token-DO-NOT-LEAK-42"


def test_api_key_and_registry_token_reach_no_state_log_or_output(
    vast_stack: PulumiCli, sim: VastSim
):
    """The key (VAST_API_KEY) and a ghcr.io token (GHCR_TOKEN, the image is on ghcr.io) are
    used for the rent, yet neither is in any file of the backend, the project or PULUMI_HOME,
    in `stack export --show-secrets`, the outputs or pulumi's output."""
    vast_stack.extra_env = {**vast_stack.extra_env, "GHCR_TOKEN": GHCR_TOKEN}
    out = up(vast_stack) + vast_stack.run("refresh", "--yes", "--non-interactive")
    outputs = vast_stack.run("stack", "output", "--json", "--show-secrets")
    state = vast_stack.run("stack", "export", "--show-secrets")
    out += vast_stack.run("destroy", "--yes", "--non-interactive")
    roots = (vast_stack.backend, vast_stack.program, Path(vast_stack.env()["PULUMI_HOME"]))
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert files, "nothing to search"
    for secret in (sim.api_key, GHCR_TOKEN):
        leaks = [str(p) for p in files if secret.encode() in p.read_bytes()]
        assert leaks == []
        assert secret not in out + outputs + state
    assert sim.billing_now() == []


@pytest.mark.parametrize("key", ["apiKey", "registryLogin"])
def test_a_secret_as_stack_config_is_refused_before_anything_is_recorded(
    vast_stack: PulumiCli, sim: VastSim, key: str
):
    """Pulumi records every project config value among the pulumi-python provider's inputs
    in state (encrypted): so a secret there is refused, and state never gets it."""
    secret = f"{key}-DO-NOT-STORE-0123456789"
    vast_stack.run_raw("config", "set", "--secret", "--stack", vast_stack.stack, "--",
                       f"vast-gpu:{key}", secret)
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code != 0
    assert f"pulumi config rm vast-gpu:{key}" in out
    assert "Traceback" not in out
    state = vast_stack.run("stack", "export", "--show-secrets")
    assert secret not in state and secret not in out
    assert sim.ledger()["instances"] == []


def test_example_stack_preview_without_key_says_where_to_put_one(
    tmp_path: Path, ssh_key: Path, monkeypatch: pytest.MonkeyPatch
):
    require_pulumi()
    for var in ("VAST_API_KEY", "VAST_URL", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for suffix in ("", ".pub"):
        shutil.copy(f"{ssh_key}{suffix}", home / ".ssh" / f"id_ed25519{suffix}")
    project = project_copy(tmp_path / "project")
    (project / "stacks").mkdir()
    stack = "example-exp"
    example = ROOT / "stacks" / "Pulumi.example.yaml"
    shutil.copy(example, project / "stacks" / f"Pulumi.{stack}.yaml")
    backend = tmp_path / "state"
    backend.mkdir()
    cli = PulumiCli(project, stack, backend, {"HOME": str(home), "PULUMI_CONFIG_PASSPHRASE": "own"})
    cli.run_raw("stack", "init", stack, "--non-interactive")
    code, out = cli.attempt("preview", "--non-interactive")
    assert code != 0
    assert "no vast.ai API key found" in out
    assert "export VAST_API_KEY=" in out
    assert "VAST_API_KEY" in out and ".config/vastai/vast_api_key" in out


@pytest.mark.parametrize(("setting", "env", "expected"), [
    (("query", "gpu_ram => 20"), {}, "unknown operator"),
    (("disk", "lots"), {}, "vast-gpu:disk = 'lots': must be a number"),
    (None, {"VAST_API_KEY": "wrong-key"}, "auth_error: Invalid user key"),
])
def test_expected_errors_reach_the_user_as_the_message_alone(
    vast_stack: PulumiCli, sim: VastSim, setting: tuple[str, str] | None, env: dict,
    expected: str,
):
    if setting:
        vast_stack.run("config", "set", f"vast-gpu:{setting[0]}", setting[1])
    vast_stack.extra_env = {**vast_stack.extra_env, **env}
    code, out = vast_stack.attempt("up", "--yes", "--non-interactive", "--skip-preview")
    assert code != 0
    assert expected in out
    assert "Traceback" not in out and 'File "' not in out
    assert sim.ledger()["instances"] == []
