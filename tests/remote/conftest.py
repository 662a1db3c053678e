"""A ready vastsim instance to SSH into, for the remote/ tests (real sshd, real paramiko)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.api import VastClient
from providers.lifecycle import InstanceSpec, Lifecycle, ssh_endpoint
from providers.settings import DEFAULT_ORDER, DEFAULT_QUERY
from remote.ssh import Target, login_probe
from vastsim.testing import VastSim


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest.fixture
def rent(
    vastsim: VastSim, ssh_key: Path, tmp_path: Path
) -> Iterator[Callable[..., tuple[int, Target]]]:
    """rent(**spec overrides) -> (instance id, Target); every instance destroyed after."""
    client = VastClient(vastsim.url, vastsim.api_key)
    lifecycle = Lifecycle(
        client, progress=lambda _line: None,
        ssh_probe=lambda h, p: login_probe(h, p, ssh_key), poll_first_s=0.05, poll_max_s=0.2,
    )
    made: list[tuple[int, str]] = []

    def make(**overrides: object) -> tuple[int, Target]:
        tag = f"vast-gpu:test/remote/{len(made)}"
        spec = InstanceSpec(**{
            "image": "img", "disk_gb": 20, "query": DEFAULT_QUERY, "order": DEFAULT_ORDER,
            "tag": tag, "ssh_public_key": ssh_key.with_suffix(".pub").read_text(),
            "ready_timeout_s": 30, "max_attempts": 1, **overrides,
        })  # type: ignore[arg-type]
        record = lifecycle.create(spec)
        made.append((int(record["id"]), tag))
        end = ssh_endpoint(record)
        assert end is not None
        known = tmp_path / "known_hosts" / str(record["id"])
        return int(record["id"]), Target(end.host, end.port, ssh_key, known)

    yield make
    for instance_id, tag in made:
        lifecycle.delete(instance_id, tag)
    client.close()


@pytest.fixture
def target(rent: Callable[..., tuple[int, Target]]) -> Target:
    """One ready instance."""
    return rent()[1]
