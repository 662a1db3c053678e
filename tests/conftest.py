"""Shared fixtures: a fresh vastsim per test, and the rule for tests that need a real sshd
or a PostgreSQL server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.pgserver import PgMissing, bin_dir
from vastsim.testing import VastSim

SSHD = Path("/usr/sbin/sshd")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.sshd`` tests skip without OpenSSH locally, and fail under CI=true."""
    if item.get_closest_marker("sshd") and not (SSHD.exists() and shutil.which("ssh-keygen")):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SSHD} or ssh-keygen missing: install openssh-server and -client")
        pytest.skip(f"{SSHD} or ssh-keygen missing")
    if item.get_closest_marker("postgres"):
        try:
            bin_dir()
        except PgMissing as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(str(exc))
            pytest.skip(str(exc))


@pytest.fixture
def vastsim_factory(tmp_path: Path) -> Iterator[Callable[..., VastSim]]:
    """Start vastsims with custom flags (``boot_seconds=``, ``faults=``...); all stopped after."""
    started: list[VastSim] = []

    def start(**kwargs: Any) -> VastSim:
        sim = VastSim(tmp_path / f"vastsim{len(started)}", **kwargs)
        started.append(sim)
        return sim.start()

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def vastsim(vastsim_factory: Callable[..., VastSim]) -> VastSim:
    """A running vastsim with zero boot time and a fresh state dir in tmp_path."""
    return vastsim_factory()
