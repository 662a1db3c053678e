"""`make setup`'s own steps on a fresh machine: tools/system-deps.sh names every missing tool and
its package within seconds (and installs only as root), tools/ensure-venv.sh redoes a venv
that is stale or broken and nothing else. Real scripts and processes throughout; the temp
dirs stand in for the machine, the real .venv is never changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools.pulumi_env import ROOT

SYSTEM_DEPS = ROOT / "tools" / "system-deps.sh"
ENSURE_VENV = ROOT / "tools" / "ensure-venv.sh"
BASH = shutil.which("bash") or "/bin/bash"

# every tool of the script's table and the package it must name
TABLE = {
    "sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
    "scp": "openssh-client", "rsync": "rsync", "unshare": "util-linux", "mount": "mount",
    "setpriv": "util-linux", "tar": "tar", "git": "git", "make": "make",
    "initdb": "postgresql", "pg_ctl": "postgresql", "python3": "python3",
    "python3 -m venv": "python3-venv",
}
ON_PATH = ("ssh", "ssh-keygen", "scp", "rsync", "unshare", "mount", "setpriv", "tar", "git",
           "make")


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


def _bare_machine(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH dir holding only bash (all the script needs) and a fake apt-get that records
    any call, and an empty root where /usr/sbin/sshd and /usr/lib/postgresql are looked for."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    root.mkdir()
    (bin_dir / "bash").symlink_to(BASH)
    apt = bin_dir / "apt-get"
    apt.write_text(f'#!{BASH}\necho "$DEBIAN_FRONTEND apt-get $*" >> {tmp_path / "apt.log"}\n')
    apt.chmod(0o755)
    return bin_dir, root


def _system_deps(bin_dir: Path, root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                                  float]:
    started = time.monotonic()
    proc = subprocess.run([BASH, str(SYSTEM_DEPS), *args], capture_output=True, text=True,
                          timeout=30, env={"PATH": str(bin_dir), "SYSTEM_DEPS_ROOT": str(root)})
    return proc, time.monotonic() - started


def _missing(stderr: str) -> dict[str, str]:
    """tool -> package, from the script's `  TOOL  package PKG  why` lines."""
    return {m[1]: m[2] for m in re.finditer(r"^  (\S+(?: -m venv)?)\s+package (\S+)\s", stderr,
                                            re.M)}


def test_check_on_a_bare_machine_names_every_tool_and_package_in_seconds(tmp_path: Path) -> None:
    bin_dir, root = _bare_machine(tmp_path)
    proc, elapsed = _system_deps(bin_dir, root, "--check")
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 5, f"--check took {elapsed:.1f} s"
    assert _missing(proc.stderr) == TABLE
    packages = sorted(set(TABLE.values()))
    fix = re.search(r"Fix: sudo apt-get install -y (.*?)\s{2}", proc.stderr)
    assert fix and sorted(fix[1].split()) == packages, proc.stderr
    assert not (tmp_path / "apt.log").exists(), "--check ran apt-get"


def test_without_check_it_installs_exactly_the_missing_packages_or_says_the_sudo(
        tmp_path: Path) -> None:
    bin_dir, root = _bare_machine(tmp_path)
    proc, elapsed = _system_deps(bin_dir, root)
    assert proc.returncode == 1, proc.stderr
    packages = sorted(set(TABLE.values()))
    if os.geteuid() == 0:
        # the fake apt-get installs nothing, so the second look still misses all of them
        calls = (tmp_path / "apt.log").read_text().splitlines()
        assert calls[0] == "noninteractive apt-get update -qq"
        install = calls[1].split()
        assert install[:6] == ["noninteractive", "apt-get", "install", "-y", "-qq",
                               "--no-install-recommends"]
        assert sorted(install[6:]) == packages
        assert "still missing after apt-get install" in proc.stderr
    else:
        assert elapsed < 5
        assert not (tmp_path / "apt.log").exists()
        assert "not root, so nothing was installed" in proc.stderr
        line = next(x for x in proc.stderr.splitlines() if "sudo apt-get install" in x)
        assert sorted(line.split()[4:]) == packages


def test_check_passes_when_everything_is_there_and_names_only_what_is_not(
        tmp_path: Path) -> None:
    bin_dir, root = _bare_machine(tmp_path)
    for tool in ON_PATH:
        _stub(bin_dir / tool)
    # a real python3, the one running these tests (it has venv and ensurepip)
    (bin_dir / "python3").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    _stub(root / "usr" / "sbin" / "sshd")
    for tool in ("initdb", "pg_ctl"):
        _stub(root / "usr" / "lib" / "postgresql" / "15" / "bin" / tool)
    proc, _ = _system_deps(bin_dir, root, "--check")
    assert (proc.returncode, proc.stderr) == (0, "")

    (bin_dir / "rsync").unlink()
    (root / "usr" / "lib" / "postgresql" / "15" / "bin" / "pg_ctl").unlink()
    proc, _ = _system_deps(bin_dir, root, "--check")
    assert proc.returncode == 1
    assert _missing(proc.stderr) == {"rsync": "rsync", "pg_ctl": "postgresql"}
    assert "sudo apt-get install -y rsync postgresql" in proc.stderr


def test_make_setup_runs_system_deps_before_the_venv_and_pulumi() -> None:
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "setup"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    steps = [line for line in out.splitlines() if line.startswith("tools/")]
    assert steps == ["tools/system-deps.sh", "tools/ensure-venv.sh", "tools/build-pulumi.sh"]


# --- the venv ------------------------------------------------------------------------------


def _checkout(tmp_path: Path, requirements: str) -> Path:
    """A checkout's requirements.txt and a .venv whose python is the project's (so it runs
    and has pip; the project's .venv itself is never written: the requirements are comments)."""
    (tmp_path / "requirements.txt").write_text(requirements)
    py = tmp_path / ".venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f'#!{BASH}\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    return tmp_path


def _ensure_venv(checkout: Path, *args: str) -> str:
    proc = subprocess.run([BASH, str(ENSURE_VENV), *args, str(checkout)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_stale_stamp_reinstalls_and_a_current_one_does_nothing(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "# pins v2\n")
    stamp = checkout / ".venv" / ".installed-requirements.txt"
    assert "no stamp of what was installed" in _ensure_venv(checkout, "--dry-run")

    stamp.write_text("# pins v1\n")  # a .venv from an older requirements.txt
    os.utime(stamp)  # newer than requirements.txt: contents count, not times
    assert "would pip install -r requirements.txt: requirements.txt changed" in _ensure_venv(
        checkout, "--dry-run")

    out = _ensure_venv(checkout)  # a real pip install -r (of nothing but a comment)
    assert "installing requirements.txt (requirements.txt changed" in out
    assert stamp.read_text() == "# pins v2\n"
    started = time.monotonic()
    assert _ensure_venv(checkout) == ""
    assert time.monotonic() - started < 5


def test_a_missing_or_broken_venv_python_is_rebuilt(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path, "# pins\n")
    py = checkout / ".venv" / "bin" / "python"
    (checkout / ".venv" / ".installed-requirements.txt").write_text("# pins\n")
    assert _ensure_venv(checkout, "--dry-run") == ""

    py.unlink()
    py.symlink_to(tmp_path / "python3.10-since-removed")  # its base Python is gone
    out = _ensure_venv(checkout, "--dry-run")
    assert f"would rebuild {checkout / '.venv'}: {py} is missing" in out

    py.unlink()
    py.write_text(f"#!{BASH}\nexit 127\n")  # there, but does not run
    out = _ensure_venv(checkout, "--dry-run")
    assert f"would rebuild {checkout / '.venv'}: {py} does not run" in out
    assert "would pip install -r requirements.txt: a new venv" in out
