"""`make demo`'s job, as a newcomer runs it: vastsim from this checkout's own state dir (which
may lie under /work, where an instance's binds could hide it), the whole deploy, the ledger."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import require_pulumi
from workflow.pulumi_env import ROOT

pytestmark = pytest.mark.e2e


def test_the_demo_runs_end_to_end_and_leaves_nothing_billing() -> None:
    proc = subprocess.run([sys.executable, "-m", "invoke", "demo"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "work/sine/sine_440hz.wav" in out and "logs/summary.json" in out
    assert "nothing billing now" in out


def test_a_demo_whose_instance_never_boots_fails_in_a_minute_naming_why() -> None:
    """vastsim boots in seconds, so the demo's wait is sized to that (readyTimeout x
    maxAttempts), not to a real vast.ai; the error says what was waited for and where to look."""
    require_pulumi()
    code = ("from workflow.demo import run_demo\n"
            "run_demo(faults=[{'kind': 'stuck_loading', 'count': 5}])\n")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "not running before the deadline (last state loading)" in out
    assert "the demo failed" in out and "vastsim.log" in out
    assert took < 150, f"a stuck demo took {took:.0f} s to fail"
