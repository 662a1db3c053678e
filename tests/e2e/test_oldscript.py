"""The old script's make targets mean what they meant (docs: old-script.md), end to end: real
`make`, `inv`, `pulumi`, vastsim's ledger and sshd."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.inv_cli import Inv
from vastsim.testing import VastSim

pytestmark = pytest.mark.e2e


@pytest.fixture
def old_habits(inv: Inv, ssh_key: Path, tmp_path: Path) -> Inv:
    """A user of the old script: a key in ~/.ssh, their own passphrase, no stack selected."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    for name in ("id_ed25519", "id_ed25519.pub"):
        shutil.copy(ssh_key.parent / name, home / ".ssh" / name)
    inv.env.update(HOME=str(home), PULUMI_CONFIG_PASSPHRASE="users-own")
    return inv


def test_dry_run_rents_nothing_and_words_not_understood_are_errors(
    old_habits: Inv, app: Path, vastsim: VastSim
):
    (app / "my-jobs.txt").write_text("write one\n")
    dry = old_habits.make("vast-run", "ARGS=--dry-run --no-pull", "TASKS=my-jobs.txt",
                          cwd=app)
    assert "deploy: dry run: nothing rented" in dry.stdout, dry.stdout + dry.stderr
    assert f"sync {app} (the current directory)" in dry.stdout
    assert "pull workDir" not in dry.stdout  # --no-pull understood, not dropped

    bad = old_habits.make("vast-run", "ARGS=--no-sync --keep --dryrun", "TASKS=my-jobs.txt",
                          cwd=app, check=False)
    assert bad.returncode != 0
    assert "'--dryrun' is not an option of the old script" in bad.stderr, bad.stderr
    no_id = old_habits.make("vast-destroy", check=False)
    assert no_id.returncode != 0 and "ID= is required" in no_id.stderr
    assert vastsim.ledger()["instances"] == []
    assert old_habits.stacks() == []


def test_the_one_liners_from_your_project_directory(old_habits: Inv, app: Path,
                                                    vastsim: VastSim):
    """vast-run with a task after `--`, then --keep, vast-status, vast-pull and vast-destroy
    by instance id, the way old-script.md shows them."""
    inv = old_habits
    one = inv.make("vast-run", """ARGS=-- hello --text "Hello world" """, cwd=app)
    assert "args(3): hello --text Hello world" in one.stdout, one.stdout + one.stderr
    assert "nothing of this job bills any more" in one.stdout
    assert vastsim.billing_now() == []

    (app / "my-jobs.txt").write_text("write first\n")
    kept = inv.make("vast-run", "ARGS=--keep --job kj", "TASKS=my-jobs.txt", cwd=app).stdout
    assert "wrote first" in kept and "stack 'job-kj'" in kept
    [iid] = vastsim.billing_now()
    assert f"make vast-destroy ID={iid}" in kept

    status = inv.make("vast-status").stdout
    assert re.search(rf"instance {iid}: .*running.*; stack 'job-kj'", status), status

    pulled = inv.make("vast-pull", f"ID={iid}", "JOB=later").stdout
    assert f"stack 'job-kj' holds instance {iid}" in pulled
    pulled_file = inv.project / "work_remote" / "later" / "work" / "out" / "first.txt"
    assert pulled_file.read_text() == "first\n"
    latest = inv.make("vast-pull", f"ID={iid}").stdout  # no JOB=: the job of the run
    assert "job kj (the stack's latest job)" in latest

    gone = inv.make("vast-destroy", f"ID={iid}").stdout
    assert f"stack 'job-kj' holds instance {iid}" in gone
    assert "removed stack 'job-kj'" in gone  # the deploy's stack goes with its instance
    assert vastsim.billing_now() == [] and inv.stacks() == []


def test_vast_shell_rents_a_fresh_instance_and_keeps_it(inv: Inv, app: Path, ssh_key: Path,
                                                        vastsim: VastSim):
    mine = inv.new_stack(ssh_key)
    inv.pulumi(mine, "stack", "select", mine, on_stack=False)
    shell = inv.make("vast-shell", f"SRC={app}", stdin="pwd\nls\nexit\n")
    out = shell.stdout
    assert f"vast-run: base stack {mine!r} (the selected one)" in out, out + shell.stderr
    assert "/app" in out.splitlines() and "run-direct" in out
    [iid] = vastsim.billing_now()
    assert f"kept: instance {iid}" in out and f"make vast-destroy ID={iid}" in out
    assert inv.selected() == mine
    inv.make("vast-destroy", f"ID={iid}")
    assert vastsim.billing_now() == []
    assert inv.stacks() == [mine]  # the job's stack is gone; yours stays, and selected
    assert inv.selected() == mine


@pytest.mark.parametrize("job", ["../../escape", "/tmp/abs-job-old"])
def test_make_targets_refuse_a_job_name_that_would_leave_work_remote(
    old_habits: Inv, app: Path, vastsim: VastSim, job: str
):
    """`make vast-run ARGS='--job ...'` and `make vast-pull JOB=...` check the name before
    anything: no stack, no instance, nothing written."""
    (app / "my-jobs.txt").write_text("write one\n")
    for target, args in (("vast-run", [f"ARGS=--job {job}", "TASKS=my-jobs.txt"]),
                         ("vast-run", [f"ARGS=--job={job} -- write one"]),
                         ("vast-pull", ["ID=1", f"JOB={job}"])):
        proc = old_habits.make(target, *args, cwd=app, check=False)
        assert proc.returncode != 0, proc.stdout
        assert "one folder name under work_remote/" in proc.stderr, proc.stderr
    assert vastsim.ledger()["instances"] == [] and old_habits.stacks() == []
    assert not (old_habits.project / "work_remote").exists()
    assert not Path("/tmp/abs-job-old").exists()
