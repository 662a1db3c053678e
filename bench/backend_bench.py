"""`pulumi up` and `pulumi destroy` on a shared PostgreSQL backend against the file backend.

The same program (the repo's __main__.py), the same stack name and the same vastsim (boot time
0, real sshd) on each backend; N rounds of up then destroy, each timed as a whole CLI run, and
`pulumi stack export` (what `inv sweep` runs once per stack). The PostgreSQL server is the
tests' (tests/e2e/pgserver.py: Debian's binaries, loopback TCP), with fsync on as a real one.
Usage: .venv/bin/python -m bench.backend_bench [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import project_copy
from tests.e2e.pgserver import PgServer
from vastsim.testing import VastSim
from workflow.pulumi_env import ROOT, pulumi_env

STACK = "local-bench"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                         f"{proc.stderr[-2000:]}")
    return took


def run_backend(name: str, url: str, work: Path, sim: VastSim, key: Path,
                runs: int) -> dict[str, list[float]]:
    program = project_copy(work / f"project-{name}")
    env = pulumi_env(STACK, {**os.environ, "PULUMI_BACKEND_URL": url, "VAST_URL": sim.url,
                             "VAST_API_KEY": sim.api_key, "PYTHONPATH": str(ROOT),
                             "PULUMI_HOME": str(work / f"home-{name}")})

    def pulumi(*args: str) -> float:
        return timed(["pulumi", *args, "--non-interactive", "--stack", STACK], program, env)

    timed(["pulumi", "stack", "init", STACK, "--non-interactive"], program, env)
    for k, v in {"image": "img", "sshPublicKey": f"{key}.pub", "readyTimeout": "60"}.items():
        pulumi("config", "set", f"vast-gpu:{k}", v)
    out: dict[str, list[float]] = {"up": [], "destroy": [], "stack export": []}
    for _ in range(runs):
        out["up"].append(pulumi("up", "--yes", "--skip-preview"))
        out["stack export"].append(pulumi("stack", "export"))
        out["destroy"].append(pulumi("destroy", "--yes", "--skip-preview"))
    if sim.billing_now():
        raise SystemExit(f"still billing after destroy: {sim.billing_now()}")
    return out


def main(runs: int = 5) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    state = work / "state"
    state.mkdir()
    with VastSim(work / "sim") as sim, PgServer(fsync=True) as pg:
        results = {
            "file": run_backend("file", state.as_uri(), work, sim, key, runs),
            "postgres": run_backend("postgres", pg.database("vastgpu"), work, sim, key, runs),
        }
        rows = pg.sql("SELECT count(*), sum(octet_length(data::text)) FROM pulumi_state",
                      database="vastgpu").strip().split("|")
    print(f"state table after {runs} up+destroy of one stack: {rows[0]} rows, "
          f"{int(rows[1]) / 1024:.0f} KiB (pulumi keeps every update's history and a backup)")
    print(f"{runs} run(s) each, seconds per CLI run: median (min-max)")
    for op in ("up", "destroy", "stack export"):
        cells = []
        for backend, times in results.items():
            t = times[op]
            cells.append(f"{backend} {statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})")
        print(f"  {op:<13} " + "   ".join(cells))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
