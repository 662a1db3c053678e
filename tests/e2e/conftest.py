"""Fixtures for tests that drive the real pulumi CLI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.pulumi_cli import PulumiCli, pulumi_available

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture
def smoke_stack(tmp_path: Path) -> Iterator[PulumiCli]:
    """A throwaway stack of the smoke program on a file backend in tmp_path; removed after."""
    if not pulumi_available():
        if os.environ.get("CI") == "true":
            pytest.fail("pulumi CLI not found: run `make setup` (tools/build-pulumi.sh)")
        pytest.skip("pulumi CLI not built yet: run `make setup`")
    backend = tmp_path / "state"
    backend.mkdir()
    cli = PulumiCli(PROGRAMS / "smoke", f"test-smoke-{uuid.uuid4().hex[:8]}", backend, {})
    cli.run_raw("stack", "init", cli.stack, "--non-interactive")
    yield cli
    cli.run("destroy", "--yes", "--non-interactive", check=False)
    cli.run_raw("stack", "rm", cli.stack, "--yes", "--force", check=False)
