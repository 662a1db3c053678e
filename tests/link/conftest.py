"""Fixtures for tests through a Toxiproxy link: a rented vastsim instance (the remote/ tests'
fixtures), a Toxiproxy server, and a link in front of the instance's sshd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.link import Link, Toxiproxy
from remote.ssh import Target
from tests.remote.conftest import rent, ssh_key, target

__all__ = ["rent", "ssh_key", "target"]


@pytest.fixture
def toxiproxy(tmp_path: Path) -> Iterator[Toxiproxy]:
    """A toxiproxy-server (built into the cache on first use, never skipped)."""
    with Toxiproxy(tmp_path / "toxiproxy") as server:
        yield server


@pytest.fixture
def link(toxiproxy: Toxiproxy, target: Target) -> Link:
    """A proxy in front of the instance's sshd, no toxics yet."""
    return toxiproxy.proxy(f"{target.host}:{target.port}")


@pytest.fixture
def via_link(link: Link, target: Target, tmp_path: Path) -> Target:
    """The instance reached through the link (its own known_hosts: pins are per host:port)."""
    return link.target(target, tmp_path / "known_hosts_link")
