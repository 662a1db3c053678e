"""Without a working sshd: vastsim refuses to start, and an instance whose sshd fails exits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vastsim.helpers import Api
from vastsim.sshhost import SSHD, SSHD_ENV


def _serve(tmp_path: Path, sshd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vastsim", "serve", "--port", "0",
                           "--state-dir", str(tmp_path / "s")],
                          env={**os.environ, SSHD_ENV: sshd}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_missing_sshd_is_refused_with_the_package_to_install(tmp_path):
    proc = _serve(tmp_path, str(tmp_path / "no" / "sshd"))
    assert proc.returncode == 2
    assert "apt-get install openssh-server" in proc.stderr and "no/sshd" in proc.stderr
    assert "Traceback" not in proc.stderr and "VAST_URL" not in proc.stdout
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_relative_sshd_path_is_refused(tmp_path):
    proc = _serve(tmp_path, "sshd")
    assert proc.returncode == 2 and "absolute path" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only namespace mode (root) binds over /tmp")
def test_sshd_under_tmp_is_refused_as_root(tmp_path):
    fake = _script(tmp_path / "sshd", "exit 0\n")
    proc = _serve(tmp_path, str(fake))
    assert proc.returncode == 2 and "hidden inside instances" in proc.stderr


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A dir instances can see: in namespace mode /tmp, /app and /work are bound over."""
    path = Path(tempfile.mkdtemp(prefix="vastsim-test-sshd-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.sshd
def test_sshd_with_a_bad_config_sends_the_instance_to_exited(vastsim_factory, outside_tmp,
                                                              monkeypatch):
    broken = _script(outside_tmp / "sshd", 'echo "sshd_config line 3: Bad configuration option: '
                                        'Nope" >&2\nexit 255\n')
    monkeypatch.setenv(SSHD_ENV, str(broken))
    api = Api(vastsim_factory())
    inst = api.wait_status(api.rent(), "exited")
    assert inst["status_msg"].startswith("sshd failed: ")
    assert "Bad configuration option: Nope" in inst["status_msg"]
    assert inst["intended_status"] == "running" and "ports" not in inst


@pytest.mark.sshd
def test_sshd_that_vanished_sends_the_instance_to_exited(vastsim_factory, outside_tmp,
                                                         monkeypatch):
    wrapper = _script(outside_tmp / "sshd", f'exec {SSHD} "$@"\n')
    monkeypatch.setenv(SSHD_ENV, str(wrapper))
    sim = vastsim_factory()
    api = Api(sim)
    wrapper.unlink()  # after the start-up check, before the first boot
    first = api.wait_status(api.rent(), "exited")
    assert "sshd failed: " in first["status_msg"] and str(wrapper) in first["status_msg"]
    _script(wrapper, f'exec {SSHD} "$@"\n')
    running = api.wait_status(api.rent(), "running")
    wrapper.unlink()  # gone again: the next boot of the same instance fails too
    api.call("PUT", f"/api/v0/instances/reboot/{running['id']}/", {})
    again = api.wait_status(running["id"], "exited")
    assert "sshd failed: " in again["status_msg"]
    ledger = {r["id"]: r for r in sim.ledger()["instances"]}
    assert ledger[first["id"]]["billing_gpu"] is False
