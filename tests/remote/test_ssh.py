"""remote.ssh.Connection against a vastsim instance's real sshd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import paramiko
import pytest
import requests

from providers.api import VastClient
from providers.records import ssh_endpoint
from remote.errors import CommandError, ConnectError, HostKeyChanged
from remote.ssh import Connection, Target
from vastsim.testing import VastSim

pytestmark = pytest.mark.sshd


def test_run_captures_output_and_exit_code(target: Target) -> None:
    with Connection(target) as conn:
        result = conn.run("echo out; echo err >&2; cd /app && pwd", check=False)
        assert (result.exit_code, result.stdout, result.stderr) == (0, "out\n/app\n", "err\n")
        big = conn.run("head -c 3000000 /dev/zero | tr '\\0' x; head -c 200000 /dev/zero >&2")
        assert len(big.stdout) == 3_000_000 and len(big.stderr) == 200_000
        assert conn.run("cat", stdin=b"piped").stdout == "piped"


def test_failed_command_error_has_command_code_and_tail(target: Target) -> None:
    with Connection(target) as conn, pytest.raises(CommandError) as err:
        conn.run("for i in $(seq 1 30); do echo line$i; done; echo boom >&2; exit 3")
    message = str(err.value)
    assert "exited 3" in message and "line30" in message and "boom" in message
    assert "line5\n" not in message  # only the tail
    assert err.value.exit_code == 3


def test_host_key_is_pinned_on_first_use_and_a_change_refused(target: Target) -> None:
    assert not target.known_hosts.exists()
    with Connection(target) as conn:
        conn.run("true")
    pinned = target.known_hosts.read_text()
    assert f"[{target.host}]:{target.port}" in pinned
    with Connection(target) as conn:  # same key: accepted
        conn.run("true")
    other = paramiko.Ed25519Key.from_private_key_file(str(target.key_path))
    target.known_hosts.write_text(
        f"[{target.host}]:{target.port} ssh-ed25519 {other.get_base64()}\n"
    )
    with pytest.raises(HostKeyChanged) as err:
        Connection(target, deadline_s=1).open()
    assert str(target.known_hosts) in str(err.value)
    assert "delete" in str(err.value)


def test_the_pin_belongs_to_the_instance_not_to_its_address(
    rent: Callable[..., tuple[int, Target]],
) -> None:
    """Outputs pointed at another sshd on the same host (another port) must not pass with a
    second pin line; the same instance's key at a new port (it moved) does."""
    _, mine = rent()
    _, other = rent()
    with Connection(mine) as conn:
        conn.run("true")
    pinned = mine.known_hosts.read_text()
    elsewhere = replace(other, known_hosts=mine.known_hosts, key_path=mine.key_path)
    with pytest.raises(HostKeyChanged):
        Connection(elsewhere, deadline_s=1).open()
    assert mine.known_hosts.read_text() == pinned  # nothing appended

    moved = pinned.replace(f"[{mine.host}]:{mine.port}", f"[{mine.host}]:{mine.port + 1}")
    mine.known_hosts.write_text(moved)  # as if the key had been pinned at an earlier port
    with Connection(mine) as conn:
        conn.run("true")
    assert mine.known_hosts.read_text().count("ssh-ed25519") == 2


def test_refused_connections_are_retried_until_the_deadline(target: Target) -> None:
    closed = replace(target, port=1)
    with pytest.raises(ConnectError) as err:
        Connection(closed, deadline_s=1.2).open()
    assert err.value.attempts >= 2
    assert "after" in str(err.value) and ":1" in str(err.value)


def test_sshd_that_starts_late_is_waited_for(vastsim: VastSim, ssh_key: Path, tmp_path: Path):
    headers = vastsim.headers
    pub = ssh_key.with_suffix(".pub").read_text()
    requests.post(f"{vastsim.url}/api/v0/ssh/", json={"ssh_key": pub}, headers=headers,
                  timeout=30).raise_for_status()
    vastsim.add_faults({"kind": "ssh_refuse", "count": 1, "seconds": 1.5})
    client = VastClient(vastsim.url, vastsim.api_key)
    offer = client.search_offers({"order": [["dph_total", "asc"]]})[0]
    iid = client.rent(offer["id"], {"image": "img", "env": {}, "disk": 20.0,
                                    "runtype": "ssh_direc ssh_proxy"})
    endpoint = ssh_endpoint(client.show_instance(iid) or {})
    assert endpoint is not None
    late = Target(endpoint.host, endpoint.port, ssh_key, tmp_path / "kh")
    with Connection(late, deadline_s=20) as conn:
        assert conn.run("echo up").stdout == "up\n"
        assert conn.attempts >= 2  # it was refused first
    client.destroy_instance(iid)
