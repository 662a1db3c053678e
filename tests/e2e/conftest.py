"""Fixtures for tests that drive the real pulumi CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.inv_cli import Inv
from tests.e2e.pulumi_cli import PulumiCli, pulumi_available
from vastsim.testing import VastSim

PROGRAMS = Path(__file__).parent / "programs"
ROOT = Path(__file__).resolve().parents[2]


def require_pulumi() -> None:
    if not pulumi_available():
        if os.environ.get("CI") == "true":
            pytest.fail("pulumi CLI not found: run `make setup` (tools/build-pulumi.sh)")
        pytest.skip("pulumi CLI not built yet: run `make setup`")


def project_copy(dest: Path) -> Path:
    """The real program (root __main__.py) in a private dir, so tests never write stacks/."""
    dest.mkdir()
    (dest / "Pulumi.yaml").write_text(
        "name: vast-gpu\n"
        "runtime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {ROOT / '.venv'}\n"
        "stackConfigDir: stacks\n"
    )
    shutil.copy(ROOT / "__main__.py", dest / "__main__.py")
    return dest


@pytest.fixture
def smoke_stack(tmp_path: Path) -> Iterator[PulumiCli]:
    """A throwaway stack of the smoke program on a file backend in tmp_path; removed after."""
    require_pulumi()
    backend = tmp_path / "state"
    backend.mkdir()
    cli = PulumiCli(PROGRAMS / "smoke", f"test-smoke-{uuid.uuid4().hex[:8]}", backend, {})
    cli.run_raw("stack", "init", cli.stack, "--non-interactive")
    yield cli
    cli.run("destroy", "--yes", "--non-interactive", check=False)
    cli.run_raw("stack", "rm", cli.stack, "--yes", "--force", check=False)


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    """A fresh ed25519 key pair; returns the private key's path (the .pub sits beside it)."""
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
    )
    return key


@pytest.fixture
def sim(vastsim: VastSim) -> VastSim:
    """vastsim (tests/conftest.py) under a short name."""
    return vastsim


@pytest.fixture
def vast_stack(tmp_path: Path, sim: VastSim, ssh_key: Path) -> Iterator[PulumiCli]:
    """A throwaway stack of the real program against vastsim; destroyed and removed after."""
    require_pulumi()
    backend = tmp_path / "state"
    backend.mkdir()
    cli = PulumiCli(
        project_copy(tmp_path / "project"), f"test-vi-{uuid.uuid4().hex[:8]}", backend,
        {"VAST_URL": sim.url, "VAST_API_KEY": sim.api_key},
    )
    cli.run_raw("stack", "init", cli.stack, "--non-interactive")
    for key, value in {
        "image": "ghcr.io/coriou/voice-tools:cuda", "sshPublicKey": f"{ssh_key}.pub",
        "readyTimeout": "30", "disk": "60",
    }.items():
        cli.run("config", "set", f"vast-gpu:{key}", value)
    yield cli
    cli.run("destroy", "--yes", "--non-interactive", check=False)
    cli.run_raw("stack", "rm", cli.stack, "--yes", "--force", check=False)


@pytest.fixture
def inv(tmp_path: Path, vastsim: VastSim) -> Inv:
    require_pulumi()
    backend = tmp_path / "state"
    backend.mkdir()
    return Inv(project_copy(tmp_path / "project"), backend, vastsim)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A tiny app: run-direct that echoes, writes into $WORK_DIR, fails on demand."""
    src = tmp_path / "app"
    src.mkdir()
    (src / "run-direct").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  write) mkdir -p /work/out && echo "$2" > "/work/out/$2.txt" && echo "wrote $2";;\n'
        '  fail) echo "failing" >&2; exit 4;;\n'
        '  forge) mkdir -p /work/logs && for f in logs/01-forge.log logs/summary.json '
        'report.json; do echo forged > /work/$f; done; echo honest;;\n'
        '  sleep) echo started > /work/sleeping; sleep "$2";;\n'
        '  *) echo "args($#): $*";;\n'
        "esac\n"
    )
    (src / "run-direct").chmod(0o755)
    (src / "data.txt").write_text("payload\n")
    return src
