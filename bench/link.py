"""A real slow or broken link in front of a vastsim sshd (or its API): Toxiproxy, driven over
its HTTP API.

vastsim's instances are sshd processes on 127.0.0.1, so without this every measurement is
loopback. ``Toxiproxy`` starts ``toxiproxy-server`` on a free port (building it first with
tools/build-toxiproxy.sh when the cache has none); ``Toxiproxy.proxy(upstream)`` puts a
``Link`` (a TCP proxy on a free port) in front of host:port; ``Link.profile`` sets one of
PROFILES, and ``Link.toxic`` adds a fault (reset_peer, timeout, limit_data) for the tests.
Used by bench/ (``--link``) and tests/link/ alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from remote.ssh import Target

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tools" / "build-toxiproxy.sh"
START_DEADLINE_S = 10.0
HTTP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Profile:
    """One-way latency (ms) and a bandwidth cap (Toxiproxy's KB/s, K = 1000), both ways."""

    latency_ms: int = 0
    rate_kbps: int = 0

    @property
    def rtt_s(self) -> float:
        return 2 * self.latency_ms / 1000

    def describe(self) -> str:
        if not self.latency_ms and not self.rate_kbps:
            return "no toxics (loopback through the proxy)"
        return (f"{self.latency_ms} ms each way (RTT {2 * self.latency_ms} ms), "
                f"{self.rate_kbps * 8 / 1000:.0f} Mbit/s each way")


PROFILES = {
    "lan": Profile(),
    "wan": Profile(latency_ms=40, rate_kbps=25_000),  # 200 Mbit/s
    "far": Profile(latency_ms=100, rate_kbps=12_500),  # 100 Mbit/s
}


def toxiproxy_bin() -> Path:
    """The bin dir holding toxiproxy-server; the build script runs (and reuses a cached build)
    every time, so a missing or stale binary is built, never skipped over."""
    done = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Toxiproxy:
    """``with Toxiproxy(log_dir) as tp: link = tp.proxy("127.0.0.1:2222")``; stopped after."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = Path(log_dir) / "toxiproxy.log"
        self.port = 0
        self.http = requests.Session()
        self._proc: subprocess.Popen[bytes] | None = None
        self._count = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Toxiproxy:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        server = toxiproxy_bin() / "toxiproxy-server"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # the free port can be taken before the server binds it
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [str(server), "-host", "127.0.0.1", "-port", str(self.port)],
                    stdout=log, stderr=log, env={**os.environ, "LOG_LEVEL": "warn"})
            if self._wait_up():
                return
            self.stop()
        raise RuntimeError(f"toxiproxy-server did not start; see {self.log_path}")

    def _wait_up(self) -> bool:
        deadline = time.monotonic() + START_DEADLINE_S
        assert self._proc is not None
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                self.http.get(f"{self.url}/version", timeout=HTTP_TIMEOUT_S).raise_for_status()
                return True
            except requests.ConnectionError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self.http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API call; an error status raises with Toxiproxy's own message."""
        resp = self.http.request(method, f"{self.url}{path}", json=body,
                                 timeout=HTTP_TIMEOUT_S)
        if not resp.ok:
            raise RuntimeError(f"toxiproxy {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def proxy(self, upstream: str, name: str | None = None) -> Link:
        """A new proxy listening on a free 127.0.0.1 port, forwarding to ``upstream``."""
        self._count += 1
        name = name or f"link{self._count}"
        made = self.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                               "upstream": upstream, "enabled": True})
        host, _, port = made["listen"].rpartition(":")
        return Link(self, name, host, int(port), upstream)


@dataclass
class Link:
    """One proxy: connect to host:port instead of the upstream."""

    api: Toxiproxy
    name: str
    host: str
    port: int
    upstream: str

    def toxic(self, kind: str, *, stream: str = "downstream", name: str | None = None,
              toxicity: float = 1.0, **attributes: int) -> str:
        """Add a toxic to every connection, open ones included; its name."""
        name = name or f"{kind}_{stream}"
        self.api.call("POST", f"/proxies/{self.name}/toxics", {
            "name": name, "type": kind, "stream": stream, "toxicity": toxicity,
            "attributes": attributes})
        return name

    def remove(self, name: str) -> None:
        self.api.call("DELETE", f"/proxies/{self.name}/toxics/{name}")

    def clear(self) -> None:
        for toxic in self.api.call("GET", f"/proxies/{self.name}/toxics") or []:
            self.remove(toxic["name"])

    def profile(self, name: str) -> Profile:
        """Replace every toxic with the profile's: latency and bandwidth, each way."""
        profile = PROFILES[name]
        self.clear()
        for stream in ("upstream", "downstream"):
            if profile.latency_ms:
                self.toxic("latency", stream=stream, latency=profile.latency_ms, jitter=0)
            if profile.rate_kbps:
                self.toxic("bandwidth", stream=stream, rate=profile.rate_kbps)
        return profile

    def target(self, direct: Target, known_hosts: Path | None = None) -> Target:
        """``direct`` reached through this link (host keys are pinned per host:port)."""
        return dataclasses.replace(direct, host=self.host, port=self.port,
                                   known_hosts=known_hosts or direct.known_hosts)

    def close(self) -> None:
        self.api.call("DELETE", f"/proxies/{self.name}")


def add_link_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", choices=sorted(PROFILES), default=None,
                        help="go through a Toxiproxy link with this profile (default: direct)")


@contextmanager
def through(profile: str | None, direct: Target,
            work: Path) -> Iterator[tuple[Target, Link | None]]:
    """``direct`` itself when profile is None, else the same sshd through a new link with that
    profile (own known_hosts file; pin it with a Connection before ssh/rsync/scp use it)."""
    if profile is None:
        yield direct, None
        return
    with Toxiproxy(work) as server:
        link = server.proxy(f"{direct.host}:{direct.port}")
        link.profile(profile)
        yield link.target(direct, work / f"known_hosts_{profile}"), link
