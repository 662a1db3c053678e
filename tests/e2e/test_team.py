"""A team on one shared state: two clones, one real PostgreSQL backend, one vastsim.

Alice and Bob each have their own copy of the project (VAST_GPU_PROJECT) and their own
PULUMI_HOME; they share PULUMI_BACKEND_URL=postgres://... (tests/e2e/pgserver.py) and the
vast.ai account (one vastsim), as a team does.
"""

from __future__ import annotations

import base64
import gzip
import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import project_copy, require_pulumi
from tests.e2e.inv_cli import Inv
from tests.e2e.pgserver import PgServer
from tests.e2e.test_vast_instance import kill_tree
from vastsim.testing import VastSim
from workflow.pulumi_env import pulumi_env

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BOOT_S = 8.0  # long enough that a holder still holds the lock when the other one looks
TEAM_PASSPHRASE = "shared-by-the-team"


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    with PgServer() as server:
        yield server


@pytest.fixture
def backend(pg: PgServer) -> tuple[str, str]:
    """(database name, backend URL) of a fresh database for this test."""
    name = f"team{uuid.uuid4().hex[:8]}"
    return name, pg.database(name)


@pytest.fixture
def slow_sim(vastsim_factory) -> VastSim:
    return vastsim_factory(boot_seconds=BOOT_S)


def clone(tmp_path: Path, who: str, url: str, sim: VastSim) -> Inv:
    require_pulumi()
    inv = Inv(project_copy(tmp_path / who), url, sim)
    home = tmp_path / f"{who}-pulumi-home"
    home.mkdir()
    inv.env["PULUMI_HOME"] = str(home)
    return inv


def share_config(owner: Inv, other: Inv, stack: str) -> None:
    """What git does for a team: the stack's config file is in both clones."""
    name = f"Pulumi.{stack}.yaml"
    (other.project / "stacks").mkdir(exist_ok=True)
    shutil.copy(owner.project / "stacks" / name, other.project / "stacks" / name)


def wait_for_instance(sim: VastSim, stack: str, timeout: float = 60.0) -> int:
    """The id of the instance vastsim rented for that stack, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in sim.instances():
            if f"/{stack}/" in (row.get("label") or ""):
                return int(row["id"])
        time.sleep(0.2)
    raise AssertionError(f"no instance for {stack} within {timeout} s")


def state_blobs(pg: PgServer, db: str) -> dict[str, str]:
    """Every object of pulumi's state table, decoded (the driver stores base64 in JSON)."""
    rows = pg.sql("SELECT key, data->>'data' FROM pulumi_state", database=db).splitlines()
    out = {}
    for row in rows:
        key, b64 = row.split("|", 1)
        raw = base64.b64decode(b64)
        out[key] = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    return out


def test_each_rents_into_own_stack_sees_the_others_and_no_key_reaches_the_database(
    tmp_path: Path, pg: PgServer, backend: tuple[str, str], vastsim: VastSim, ssh_key: Path,
):
    db, url = backend
    alice, bob = (clone(tmp_path, who, url, vastsim) for who in ("alice", "bob"))
    a_stack = alice.new_stack(ssh_key, "local-alice")
    b_stack = bob.new_stack(ssh_key, "local-bob")
    key_file = tmp_path / "bob-config" / "vastai" / "vast_api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(vastsim.api_key + "\n")
    bob.env["XDG_CONFIG_HOME"] = str(key_file.parent.parent)
    del bob.env["VAST_API_KEY"]  # Bob's key comes from his key file only (`vastai set api-key`)
    alice("up", "--stack", a_stack)
    bob("up", "--stack", b_stack)
    assert len(vastsim.billing_now()) == 2

    listed = {s["name"] for s in json.loads(alice.pulumi("", "stack", "ls", "--json",
                                                         on_stack=False))}
    assert listed == {a_stack, b_stack}  # the team's stacks, from either clone
    swept = alice("sweep").stdout
    assert "no leftover instances" in swept, swept  # Bob's instance is known, not a leftover

    dump = pg.dump(db)
    blobs = state_blobs(pg, db)
    [checkpoint] = [v for k, v in blobs.items() if k.endswith(f"/stacks/vast-gpu/{b_stack}.json")]
    b_id = json.loads(bob.pulumi(b_stack, "stack", "output", "--json"))["instance_id"]
    assert f'"instance_id":{b_id}' in checkpoint  # the state really is in the rows searched
    secret = vastsim.api_key
    assert secret not in dump
    assert not [k for k, v in blobs.items() if secret in v]
    password = url.split(":")[2].split("@")[0]
    assert password not in dump and not [k for k, v in blobs.items() if password in v]

    alice("down", "--stack", a_stack)
    bob("down", "--stack", b_stack)
    assert vastsim.billing_now() == []


def test_same_stack_at_the_same_moment_rents_once_and_the_other_is_told_who(
    tmp_path: Path, backend: tuple[str, str], slow_sim: VastSim, ssh_key: Path,
):
    _, url = backend
    alice, bob = (clone(tmp_path, who, url, slow_sim) for who in ("alice", "bob"))
    stack = alice.new_stack(ssh_key, "local-shared")
    share_config(alice, bob, stack)
    runs = [inv.start("up", "--stack", stack) for inv in (alice, bob)]
    results = [(p.wait(timeout=240), p.communicate()[0]) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    [loser] = [out for code, out in results if code == 1]
    assert f"stack '{stack}' is locked: another pulumi command is working on it" in loser
    assert "held by " in loser and ", pid " in loser and " since " in loser
    assert f"pulumi cancel --yes --stack {stack}" in loser
    assert "Traceback" not in loser
    ledger = slow_sim.ledger()
    assert len(ledger["instances"]) == 1, ledger  # exactly one rented
    alice("down", "--stack", stack)
    assert slow_sim.billing_now() == []


def test_killed_up_leaves_a_stale_lock_that_the_next_command_explains(
    tmp_path: Path, backend: tuple[str, str], slow_sim: VastSim, ssh_key: Path,
):
    _, url = backend
    alice = clone(tmp_path, "alice", url, slow_sim)
    stack = alice.new_stack(ssh_key, "local-killed")
    up = subprocess.Popen(
        alice.pulumi_argv(stack, "up", "--yes", "--skip-preview"), cwd=alice.project,
        env=pulumi_env(stack, alice.env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    orphan = wait_for_instance(slow_sim, stack)
    kill_tree(up.pid)
    up.wait()
    assert slow_sim.billing_now() == [orphan]

    again = alice("up", "--stack", stack, check=False)
    out = again.stdout + again.stderr
    assert again.returncode == 1
    assert f"stack '{stack}' is locked by a pulumi command that no longer runs" in out, out
    assert f"pid {up.pid}," in out
    [cancel] = [line.strip() for line in out.splitlines()
                if line.strip().startswith("pulumi cancel --yes")]
    assert cancel.startswith(f"pulumi cancel --yes --stack {stack}")
    assert "inv sweep" in out
    assert slow_sim.billing_now() == [orphan]  # explained, not cancelled on its own

    subprocess.run(shlex.split(cancel), env=pulumi_env(stack, alice.env), check=True,
                   capture_output=True)
    swept = alice("sweep", "--yes").stdout
    assert f"instance {orphan}: being created in stack '{stack}'" in swept, swept
    assert slow_sim.billing_now() == [orphan]  # a create in flight is never swept
    alice("down", "--stack", stack, "--instance", str(orphan))
    assert slow_sim.billing_now() == []


def test_sweep_leaves_a_teammates_create_in_flight_alone(
    tmp_path: Path, backend: tuple[str, str], slow_sim: VastSim, ssh_key: Path,
):
    _, url = backend
    alice, bob = (clone(tmp_path, who, url, slow_sim) for who in ("alice", "bob"))
    stack = bob.new_stack(ssh_key, "local-bob")
    bobs_up = bob.start("up", "--stack", stack)
    renting = wait_for_instance(slow_sim, stack)
    swept = alice("sweep", "--yes").stdout
    assert f"instance {renting}: being created in stack '{stack}'" in swept, swept
    assert "no leftover instances" in swept
    out = bobs_up.communicate(timeout=240)[0]
    assert bobs_up.returncode == 0, out
    assert slow_sim.billing_now() == [renting]  # Bob's rent went through
    bob("down", "--stack", stack)
    assert slow_sim.billing_now() == []


def test_deploy_never_rents_into_or_tears_down_a_teammates_stack_of_its_name(
    tmp_path: Path, backend: tuple[str, str], vastsim: VastSim, ssh_key: Path, app: Path,
):
    _, url = backend
    alice, bob = (clone(tmp_path, who, url, vastsim) for who in ("alice", "bob"))
    for inv in (alice, bob):
        inv.env["PULUMI_CONFIG_PASSPHRASE"] = TEAM_PASSPHRASE  # job stacks are real stacks
    job = "nightly"
    alices = f"job-{job}"
    alice.pulumi(alices, "stack", "init", alices, on_stack=False)
    for k, v in {"image": "img", "sshPublicKey": f"{ssh_key}.pub"}.items():
        alice.pulumi(alices, "config", "set", f"vast-gpu:{k}", v)
    alice("up", "--stack", alices)
    [hers] = vastsim.billing_now()

    proc = bob("deploy", "--image", "other", "--src", str(app), "--job", job,
               "--ssh-key", str(ssh_key), "--", "write", "x", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert f"stack '{alices}' exists already in the backend" in out, out
    assert "pass another --job; nothing was rented" in out
    assert vastsim.billing_now() == [hers]  # her instance untouched
    assert len(vastsim.ledger()["instances"]) == 1
    assert json.loads(alice.pulumi(alices, "stack", "output", "--json"))["instance_id"] == hers
    alice("down", "--stack", alices)
    assert vastsim.billing_now() == []
