"""bench/link.py against a real toxiproxy-server: a profile's latency is really on the wire,
and a toxic can be taken off again."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.link import PROFILES, Toxiproxy

pytestmark = pytest.mark.link


@pytest.fixture
def echo() -> Iterator[str]:
    """A TCP echo server on 127.0.0.1 (one connection at a time); its host:port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def round_trip(host: str, port: int) -> float:
    with socket.create_connection((host, port), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
        return time.monotonic() - start


def test_wan_profile_puts_its_rtt_on_the_wire_and_clear_takes_it_off(
    toxiproxy: Toxiproxy, echo: str,
) -> None:
    link = toxiproxy.proxy(echo)
    assert round_trip(link.host, link.port) < 0.05
    profile = link.profile("wan")
    assert profile == PROFILES["wan"]
    assert sorted(t["name"] for t in toxiproxy.call("GET", f"/proxies/{link.name}/toxics")) == [
        "bandwidth_downstream", "bandwidth_upstream", "latency_downstream", "latency_upstream"]
    assert profile.rtt_s <= round_trip(link.host, link.port) < profile.rtt_s + 0.1
    link.clear()
    assert round_trip(link.host, link.port) < 0.05
