"""The process: --help, machine-readable first lines, SIGTERM stops every instance cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.vastsim.helpers import Api, pids_in_mount_ns


def test_help_explains_every_flag():
    out = subprocess.run([sys.executable, "-m", "vastsim", "serve", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--port", "--state-dir", "--boot-seconds", "--faults", "--api-key",
                 "--account-created"):
        assert flag in out


def test_bad_account_date_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vastsim", "serve", "--port", "0",
                           "--state-dir", str(tmp_path / "s"), "--account-created", "June 2025"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "YYYY-MM-DD" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_first_lines_are_url_and_key(vastsim_factory):
    sim = vastsim_factory(api_key="k-123")
    first, second = sim.log.splitlines()[:2]
    assert first == f"VAST_URL={sim.url}" and second == "VAST_API_KEY=k-123"
    assert Api(sim).call("GET", "/api/v0/users/current/").json()["api_key"] == "k-123"


def test_bad_faults_file_is_refused(tmp_path):
    bad = tmp_path / "faults.json"
    bad.write_text('[{"kind": "meteor"}]')
    proc = subprocess.run([sys.executable, "-m", "vastsim", "serve", "--port", "0",
                           "--state-dir", str(tmp_path / "s"), "--faults", str(bad)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "meteor" in proc.stderr


@pytest.mark.sshd
def test_sigterm_stops_every_instance(vastsim_factory):
    sim = vastsim_factory()
    api = Api(sim)
    ids = [api.rent(onstart="sleep 300"), api.rent()]
    info = {i["id"]: i for i in sim.internals()}
    namespaces = [os.readlink(f"/proc/{info[i]['pid']}/ns/mnt") for i in ids]
    assert sim.proc is not None
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(timeout=30) == 0
    assert "state saved" in sim.log
    for ns in namespaces:
        assert pids_in_mount_ns(ns) == []
    for i in ids:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", info[i]["port"]), timeout=1).close()
