"""`make setup`'s checks: a machine without the system tools is told so in seconds, with the
packages to install (and as root they are installed), and a stale or broken venv is refreshed
(tools/system-deps.sh, Makefile). Real scripts and processes throughout; temp dirs stand in for
the machine, and the real .venv is never changed."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from workflow.pulumi_env import ROOT

SYSTEM_DEPS = ROOT / "tools" / "system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"

# every tool of the script's table and the package it must name
TABLE = {
    "sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
    "scp": "openssh-client", "rsync": "rsync", "unshare": "util-linux", "mount": "mount",
    "setpriv": "util-linux", "tar": "tar", "find": "findutils", "pgrep": "procps", "git": "git",
    "make": "make", "strace": "strace",
    "initdb": "postgresql", "pg_ctl": "postgresql", "python3": "python3",
    "python3 -m venv": "python3-venv",
}
ON_PATH = ("ssh", "ssh-keygen", "scp", "rsync", "unshare", "mount", "setpriv", "tar", "find",
           "pgrep", "git", "make", "strace")


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


def test_this_machine_has_everything_the_project_needs():
    proc = subprocess.run([str(SYSTEM_DEPS), "--check"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_an_unknown_option_is_refused():
    proc = subprocess.run([str(SYSTEM_DEPS), "--instal"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "unknown option '--instal'" in proc.stderr


def test_vastsim_sshd_is_the_sshd_looked_for(tmp_path: Path) -> None:
    env = {**os.environ, "VASTSIM_SSHD": str(tmp_path / "no" / "sshd")}
    proc = subprocess.run([str(SYSTEM_DEPS), "--check"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1 and _missing(proc.stderr) == {"sshd": "openssh-server"}


def _venv_rule(project: Path) -> subprocess.CompletedProcess[str]:
    """The Makefile's venv rule, run in a scratch project whose .venv is a fake python."""
    return subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(project),
                           "venv"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MAKEFLAGS": ""})


def test_a_stale_or_broken_venv_is_refreshed_and_a_fresh_one_left_alone(tmp_path: Path):
    project = tmp_path / "p"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / "requirements.txt").write_text("# no packages\n")
    fake = project / ".venv" / "bin" / "python"
    fake.write_text("#!/bin/sh\necho \"python $*\" >> \"$(dirname \"$0\")/calls\"\n")
    fake.chmod(0o755)
    calls = project / ".venv" / "bin" / "calls"
    stamp = project / ".venv" / ".installed-requirements.txt"
    stamp.write_text("# older pins\n")

    first = _venv_rule(project)
    assert first.returncode == 0, first.stderr
    assert "installing requirements.txt" in first.stdout
    assert "-m pip install" in calls.read_text()
    assert stamp.read_text() == "# no packages\n"

    calls.unlink()
    again = _venv_rule(project)
    assert again.returncode == 0 and again.stdout == ""
    assert "pip" not in calls.read_text()  # only the health check ran

    fake.unlink()  # a broken venv: its python is gone
    broken = _venv_rule(project)
    assert broken.returncode == 0, broken.stderr
    assert "making .venv" in broken.stdout and "installing requirements.txt" in broken.stdout
    assert (project / ".venv" / "bin" / "python").exists()


def test_make_pulumi_leaves_nothing_in_the_users_home() -> None:
    """tools/build-pulumi.sh's `pulumi version` checks, run by make, wrote ~/.pulumi/logs (pulumi
    finds that home through the passwd entry, not $HOME); the clone's .pulumi-home holds them
    now. The built CLI is current, so nothing is rebuilt."""
    logs = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".pulumi" / "logs"

    def listed() -> set[str]:
        return set(os.listdir(logs)) if logs.is_dir() else set()

    before = listed()
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_HOME"}
    done = subprocess.run(["make", "-C", str(ROOT), "pulumi"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert listed() - before == set()
