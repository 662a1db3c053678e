"""Fixtures of the vastsim tests: a raw API client and an SSH client key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.vastsim.helpers import Api
from vastsim.testing import VastSim


@pytest.fixture
def api(vastsim: VastSim) -> Api:
    return Api(vastsim)


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(private key path, public key line) of a fresh ed25519 client key."""
    path = tmp_path_factory.mktemp("client-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vastsim-test",
                    "-f", str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()
