"""invoke tasks (`inv --list`): a thin UI over providers/, remote/ and vastsim."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Context, task

from vastsim.__main__ import DEFAULT_BOOT_SECONDS, DEFAULT_PORT, DEFAULT_STATE_DIR

ROOT = Path(__file__).resolve().parent


@task(
    help={
        "port": f"TCP port on 127.0.0.1, 0 = any free one (default {DEFAULT_PORT})",
        "state_dir": f"where instances and the ledger are kept (default {DEFAULT_STATE_DIR})",
        "boot_seconds": f"seconds from rent to running (default {DEFAULT_BOOT_SECONDS:g})",
        "faults": "JSON file of faults to inject (see vastsim/faults.py)",
    }
)
def sim(
    c: Context,
    port: int = DEFAULT_PORT,
    state_dir: str = str(DEFAULT_STATE_DIR),
    boot_seconds: float = DEFAULT_BOOT_SECONDS,
    faults: str | None = None,
) -> None:
    """Run vastsim, the local vast.ai, until Ctrl-C; it prints VAST_URL and VAST_API_KEY."""
    argv = [
        sys.executable,
        "-m",
        "vastsim",
        "serve",
        "--port",
        str(port),
        "--state-dir",
        state_dir,
        "--boot-seconds",
        str(boot_seconds),
    ]
    if faults:
        argv += ["--faults", faults]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    os.execve(sys.executable, argv, env)  # vastsim owns Ctrl-C: it stops every instance cleanly
