"""`make demo`'s job, as a newcomer runs it: vastsim from this checkout's own state dir (which
may lie under /work, where an instance's binds could hide it), the whole deploy, the ledger."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.pulumi_env import ROOT

pytestmark = pytest.mark.e2e


def test_the_demo_runs_end_to_end_and_leaves_nothing_billing() -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "demo"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "work/sine/sine_440hz.wav" in out and "logs/summary.json" in out
    assert "nothing billing now" in out
