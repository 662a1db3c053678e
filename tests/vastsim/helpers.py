"""Small helpers for the vastsim tests: a raw HTTP client, SSH login, process checks."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import paramiko
import requests

from vastsim.testing import VastSim

HTTP_TIMEOUT_S = 30.0
WAIT_S = 15.0
DEMO_QUERY: dict[str, Any] = {
    "verified": {"eq": True}, "external": {"eq": False}, "rentable": {"eq": True},
    "gpu_ram": {"gte": 20000.0}, "reliability": {"gt": "0.98"}, "compute_cap": {"gte": "700"},
    "inet_down": {"gte": "200"}, "disk_space": {"gte": "50"},
    "order": [["dph_total", "asc"]], "type": "on-demand", "allocated_storage": 5.0,
}


class Api:
    """requests against one vastsim, with the account key unless told otherwise."""

    def __init__(self, sim: VastSim, key: str | None = None) -> None:
        self.sim = sim
        self.key = sim.api_key if key is None else key
        self.instance_keys: dict[int, str] = {}  # instance id -> instance_api_key of the rent

    def call(self, method: str, path: str, json: Any = None, *, key: str | None = None,
             params: dict[str, str] | None = None) -> requests.Response:
        key = self.key if key is None else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.request(method, self.sim.url + path, json=json, headers=headers,
                                params=params, timeout=HTTP_TIMEOUT_S)

    def search(self, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        r = self.call("POST", "/api/v0/bundles/", query or {})
        assert r.status_code == 200, r.text
        return r.json()["offers"]

    def rent(self, offer_id: int | None = None, **body: Any) -> int:
        if offer_id is None:
            offer_id = self.search(DEMO_QUERY)[0]["id"]
        payload = {"client_id": "me", "image": "vastai/test:latest", "disk": 10.0,
                   "runtype": "ssh_direc ssh_proxy", "env": {}, **body}
        r = self.call("PUT", f"/api/v0/asks/{offer_id}/", payload)
        assert r.status_code == 200, r.text
        self.instance_keys[r.json()["new_contract"]] = r.json()["instance_api_key"]
        return r.json()["new_contract"]

    def list(self, **params: Any) -> dict[str, Any]:
        """One page of ``GET /api/v1/instances/``; keyword args go JSON-encoded in the URL."""
        r = self.call("GET", "/api/v1/instances/",
                      params={k: v if isinstance(v, str) else json.dumps(v)
                              for k, v in params.items()})
        assert r.status_code == 200, r.text
        return r.json()

    def show(self, instance_id: int, key: str | None = None) -> dict[str, Any] | None:
        r = self.call("GET", f"/api/v0/instances/{instance_id}/", key=key)
        assert r.status_code == 200, r.text
        return r.json()["instances"]

    def wait_status(self, instance_id: int, status: str, timeout: float = WAIT_S
                    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            inst = self.show(instance_id)
            seen = inst and inst["actual_status"]
            if seen == status:
                assert inst is not None
                return inst
            time.sleep(0.02)  # poll interval of a deadline loop
        raise AssertionError(f"instance {instance_id}: still {seen!r} after {timeout} s, "
                             f"wanted {status!r}")


def host_key_of(sim: VastSim, instance_id: int) -> str:
    return next(i["host_key"] for i in sim.internals() if i["id"] == instance_id)


def ssh_connect(sim: VastSim, inst: dict[str, Any], key_path: Path,
                timeout: float = 10.0) -> paramiko.SSHClient:
    """Log in as root on the direct port, checking the host key vastsim reports."""
    port = int(inst["ports"]["22/tcp"][0]["HostPort"])
    host = inst["public_ipaddr"].strip()
    kind, blob = host_key_of(sim, inst["id"]).split()
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[{host}]:{port}", kind,
                               paramiko.Ed25519Key(data=base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host, port=port, username="root", key_filename=str(key_path),
                   look_for_keys=False, allow_agent=False, timeout=timeout,
                   banner_timeout=timeout, auth_timeout=timeout)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """Run a command; read the output before the exit status (paramiko's warning)."""
    _, stdout, stderr = client.exec_command(command, timeout=20)
    out = stdout.read().decode() + stderr.read().decode()
    return stdout.channel.recv_exit_status(), out


def pids_with_env(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (e.g. an instance's API key)."""
    found = []
    needle = marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{name}/environ").read_bytes().split(b"\0"):
                found.append(int(name))
        except OSError:
            continue
    return found


def pids_in_mount_ns(ns: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/mnt") == ns:
                    found.append(int(name))
            except OSError:
                continue
    return found


def mounts_mentioning(text: str) -> list[str]:
    """Mount lines, in any process's view, whose source or target holds ``text``."""
    lines = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                for line in Path(f"/proc/{name}/mountinfo").read_text().splitlines():
                    if text in line:
                        lines.add(line)
            except OSError:
                continue
    return sorted(lines)
