"""Rent a ready instance on vastsim for a benchmark, through the real lifecycle, and give it
back: the one way every bench gets a machine (the dead-man switch off, so it cannot fire
mid-measurement)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from providers.api import VastClient
from providers.lifecycle import Created, InstanceSpec, Lifecycle
from providers.records import ssh_endpoint
from providers.settings import parse_settings
from remote.ssh import Target, login_probe
from vastsim.testing import VastSim


class BenchInstance:
    """``with BenchInstance(sim, key, "pull") as inst: inst.target(...)``; destroyed after."""

    def __init__(self, sim: VastSim, key: Path, name: str,
                 progress: Callable[[str], None] = lambda _line: None,
                 **settings: Any) -> None:
        self.client = VastClient(sim.url, sim.api_key)
        self.lifecycle = Lifecycle(self.client, progress=progress,
                                   ssh_probe=lambda h, p: login_probe(h, p, key),
                                   poll_first_s=0.05, poll_max_s=0.2)
        raw = {"image": "bench", "disk": 20, "readyTimeout": 60, "maxAttempts": 1,
               "maxLifetime": 0, "idleTimeout": 0, "leaseTimeout": 0, **settings}
        self.spec = InstanceSpec(parse_settings(raw), tag=f"vast-gpu:bench/{name}",
                                 ssh_public_key=key.with_suffix(".pub").read_text())
        self.key = key
        self.created: Created | None = None

    def __enter__(self) -> BenchInstance:
        self.created = self.lifecycle.create(self.spec)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.created is not None:
            self.lifecycle.delete(self.instance_id, self.spec.tag)
        self.client.close()

    @property
    def instance_id(self) -> int:
        assert self.created is not None
        return int(self.created.record["id"])

    def target(self, known_hosts: Path) -> Target:
        assert self.created is not None
        end = ssh_endpoint(self.created.record)
        assert end is not None
        return Target(end.host, end.port, self.key, known_hosts)
