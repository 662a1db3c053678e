"""How fast create returns once vast reports `running`, and how many API calls a create costs.

Runs N creates through providers.lifecycle against vastsim (boot time 0, real sshd, real
paramiko login), timing from the poll that first sees `running` to create's return, then
deletes each (verified). Usage: .venv/bin/python -m bench.provider_ready [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from providers.api import VastClient
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.settings import parse_settings
from remote.ssh import login_probe
from vastsim.testing import VastSim


def main(runs: int = 10) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    durations: list[float] = []
    calls: list[int] = []
    with VastSim(work / "sim") as sim:
        for i in range(runs):
            client = VastClient(sim.url, sim.api_key)
            seen_running: list[float] = []

            def progress(line: str, seen: list[float] = seen_running) -> None:
                if ": running after" in line:
                    seen.append(time.monotonic())

            lifecycle = Lifecycle(
                client, progress=progress,
                ssh_probe=lambda host, port: login_probe(host, port, key),
            )
            settings = parse_settings({"image": "bench", "disk": 60, "readyTimeout": 60,
                                       "maxAttempts": 1})
            spec = InstanceSpec(settings, tag=f"vast-gpu:bench/ready/{i}",
                                ssh_public_key=key.with_suffix(".pub").read_text())
            record = lifecycle.create(spec).record
            durations.append(time.monotonic() - seen_running[0])
            calls.append(client.calls)
            lifecycle.delete(int(record["id"]), spec.tag)
            client.close()
        assert sim.billing_now() == [], sim.billing_now()
    print(f"runs: {runs}")
    print(f"running -> create returns: median {statistics.median(durations) * 1000:.0f} ms, "
          f"min {min(durations) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms")
    print(f"API calls per create: {statistics.median(calls):.0f} "
          f"(min {min(calls)}, max {max(calls)})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
