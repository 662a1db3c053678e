"""The dead-man switch end to end: the real pulumi CLI rents with `maxLifetime`, the instance
destroys itself on time, and `pulumi refresh` then finds it gone."""

from __future__ import annotations

import time

import pytest

from tests.e2e.pulumi_cli import PulumiCli
from vastsim.testing import VastSim

pytestmark = [pytest.mark.e2e, pytest.mark.sshd]

INSTANCE_TYPE = "pulumi-python:dynamic/vast:Instance"
LIFETIME_S = 4
SLACK_S = 3.0  # the check interval (1 s at this lifetime), whole-second clocks, the DELETE


def test_max_lifetime_destroys_the_instance_and_refresh_sees_it(
    vast_stack: PulumiCli, sim: VastSim
) -> None:
    vast_stack.run("config", "set", "vast-gpu:maxLifetime", f"{LIFETIME_S}s")
    vast_stack.run("up", "--yes", "--non-interactive", "--skip-preview")
    instance_id = vast_stack.outputs()["instance_id"]

    deadline = time.monotonic() + LIFETIME_S + SLACK_S + 5
    while instance_id in sim.billing_now():
        assert time.monotonic() < deadline, f"instance {instance_id} still bills"
        time.sleep(0.2)
    [row] = [r for r in sim.ledger()["instances"] if r["id"] == instance_id]
    assert row["phase"] == "destroyed"
    assert LIFETIME_S - 1 <= row["gpu_seconds"] <= LIFETIME_S + SLACK_S
    assert sim.billing_now() == []

    vast_stack.run("refresh", "--yes", "--non-interactive")
    assert vast_stack.resources(INSTANCE_TYPE) == []
    # Nothing left for destroy to do, and nothing bills.
    vast_stack.run("destroy", "--yes", "--non-interactive")
    assert sim.ledger()["billing_now"] == []
