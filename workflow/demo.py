"""`make demo` / `inv demo`: the main job end to end against vastsim, at zero cost.

vastsim starts, `deploy` runs examples/demo (its own run-direct, three small apps and one that
fails on purpose) on a rented instance, the results are listed, and the ledger must show
nothing billing before vastsim stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from remote.batch import parse_tasks
from vastsim.testing import VastSim
from workflow.deploy import DeployOptions, deploy
from workflow.errors import TasksFailed, WorkflowError
from workflow.paths import PROJECT_DIR
from workflow.pulumi_env import ROOT

DEMO_DIR = ROOT / "examples" / "demo"
STATE_DIR = ROOT / ".vastsim" / "demo"
DEMO_KEY = ROOT / ".vast-gpu" / "demo-key" / "id_ed25519"
BOOT_SECONDS = 2.0
SETTINGS = {
    "image": "ghcr.io/coriou/voice-tools:cuda",
    "disk": "60",
    # vastsim boots in BOOT_SECONDS and SSH answers at once: ten times that is plenty, so a
    # demo that cannot work says why in seconds, not after minutes of retries
    "readyTimeout": str(int(BOOT_SECONDS * 10)),
    "maxAttempts": "2",
}


def demo_key() -> Path:
    """The demo's own key pair, so it never needs (or touches) the user's ~/.ssh."""
    if not DEMO_KEY.exists():
        DEMO_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vast-gpu demo",
                        "-f", str(DEMO_KEY)], check=True)
    return DEMO_KEY


def run_demo(out: TextIO = sys.stdout, *, faults: list[dict[str, Any]] | None = None) -> None:
    """``faults``: vastsim's, to see how a failed boot reads."""
    started = time.monotonic()
    key = demo_key()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    job = "demo-" + time.strftime("%Y%m%d_%H%M%S")
    with VastSim(STATE_DIR, boot_seconds=BOOT_SECONDS, faults=faults) as sim:
        print(f"demo: vastsim up at {sim.url} (log {sim.log_path})", file=out)
        os.environ["VAST_URL"] = sim.url
        os.environ["VAST_API_KEY"] = sim.api_key
        tasks = parse_tasks((DEMO_DIR / "jobs.txt").read_text(), str(DEMO_DIR / "jobs.txt"))
        opts = DeployOptions(
            tasks=tasks, job=job, stack_prefix="local", src=DEMO_DIR,
            settings={**SETTINGS, "sshPublicKey": f"{key}.pub"},
        )
        try:
            deploy(opts, out=out)
        except TasksFailed as exc:
            print(f"demo: {exc}, as planned (`fail` fails on purpose)", file=out)
        except WorkflowError as exc:
            raise WorkflowError(
                f"the demo failed: {exc}\n"
                f"demo: vastsim's instance boots in about {BOOT_SECONDS + 1:.0f} s (readyTimeout "
                f"{SETTINGS['readyTimeout']} s, maxAttempts {SETTINGS['maxAttempts']}); the "
                f"cause is in the lines above and in vastsim's log {sim.log_path}") from exc
        print(f"demo: results in {opts.results_dir.relative_to(PROJECT_DIR)}:", file=out)
        for path in sorted(p for p in opts.results_dir.rglob("*") if p.is_file()):
            print(f"  {path.relative_to(opts.results_dir)}  ({path.stat().st_size} bytes)",
                  file=out)
        ledger = sim.ledger()
        if ledger["billing_now"]:
            raise WorkflowError(f"instances {ledger['billing_now']} still bill in vastsim")
        print(f"demo: ledger: {len(ledger['instances'])} instance(s), "
              f"${ledger['total_dollars']:.4f} in all, nothing billing now", file=out)
    print(f"demo: vastsim stopped; done in {time.monotonic() - started:.0f} s", file=out)
