"""A ready vastsim instance to SSH into, for the remote/ tests (real sshd, real paramiko)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from providers.api import VastClient
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.records import ssh_endpoint
from providers.settings import parse_settings
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
    """rent(**settings) -> (instance id, Target); every instance destroyed after. The
    dead-man switch is off unless a test passes its own onstart or durations."""
    client = VastClient(vastsim.url, vastsim.api_key)
    lifecycle = Lifecycle(
        client, progress=lambda _line: None,
        ssh_probe=lambda h, p: login_probe(h, p, ssh_key), poll_first_s=0.05, poll_max_s=0.2,
    )
    made: list[tuple[int, str]] = []

    def make(**overrides: object) -> tuple[int, Target]:
        tag = f"vast-gpu:test/remote/{len(made)}"
        settings = parse_settings({
            "image": "img", "disk": 20, "readyTimeout": 30, "maxAttempts": 1,
            "maxLifetime": 0, "idleTimeout": 0, "leaseTimeout": 0, **overrides,
        })
        spec = InstanceSpec(settings, tag=tag,
                            ssh_public_key=ssh_key.with_suffix(".pub").read_text())
        record = lifecycle.create(spec).record
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
