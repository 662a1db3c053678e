"""How fast create returns once vast reports `running`, and how many API calls a create costs.

Runs N creates through providers.lifecycle against vastsim (boot time 0, real sshd, real
paramiko login), timing from the poll that first sees `running` to create's return, then
deletes each (verified). Usage: .venv/bin/python -m bench.provider_ready [N] [--link wan]

With ``--link``, the API (vastsim's HTTP port) and each instance's sshd are reached through
Toxiproxy links with that profile (bench/link.py): the probe's link is made on its first call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.link import PROFILES, Link, Toxiproxy, add_link_option
from providers.api import VastClient
from providers.lifecycle import InstanceSpec, Lifecycle
from providers.settings import parse_settings
from remote.ssh import login_probe
from vastsim.testing import VastSim


def main(runs: int = 10, link: str | None = None) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    durations: list[float] = []
    calls: list[int] = []
    with VastSim(work / "sim") as sim, Toxiproxy(work) as proxies:
        url = sim.url
        links: dict[tuple[str, int], Link] = {}
        if link is not None:
            api = proxies.proxy(sim.url.removeprefix("http://").rstrip("/"))
            api.profile(link)
            url = f"http://{api.host}:{api.port}"

        def probe(host: str, port: int) -> str | None:
            if link is None:
                return login_probe(host, port, key)
            if (host, port) not in links:
                links[host, port] = proxies.proxy(f"{host}:{port}")
                links[host, port].profile(link)
            return login_probe(links[host, port].host, links[host, port].port, key)

        for i in range(runs):
            client = VastClient(url, sim.api_key)
            seen_running: list[float] = []

            def progress(line: str, seen: list[float] = seen_running) -> None:
                if ": running after" in line:
                    seen.append(time.monotonic())

            lifecycle = Lifecycle(client, progress=progress, ssh_probe=probe)
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
    where = f"through {link} ({PROFILES[link].describe()})" if link else "direct"
    print(f"runs: {runs}, {where}")
    print(f"running -> create returns: median {statistics.median(durations) * 1000:.0f} ms, "
          f"min {min(durations) * 1000:.0f} ms, max {max(durations) * 1000:.0f} ms")
    print(f"API calls per create: {statistics.median(calls):.0f} "
          f"(min {min(calls)}, max {max(calls)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, nargs="?", default=10)
    add_link_option(parser)
    args = parser.parse_args()
    main(args.runs, args.link)
