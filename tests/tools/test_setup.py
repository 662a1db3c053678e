"""`make setup`'s checks: a machine without the system tools is told so in seconds, with the
packages to install, and a stale or broken venv is refreshed (tools/system-deps.sh, Makefile)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tools.pulumi_env import ROOT

SCRIPT = ROOT / "tools" / "system-deps.sh"
# what the script itself runs: bash and a few coreutils (sed, ls, sort, tail, id)
SCRIPT_TOOLS = ("bash", "ls", "sort", "tail", "id", "sed")


def bare_path(tmp_path: Path) -> Path:
    """A PATH directory holding only what the script needs to run: no ssh, rsync, git..."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in SCRIPT_TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return bin_dir


def test_a_bare_machine_is_told_every_missing_tool_and_package_in_seconds(tmp_path: Path):
    env = {"PATH": str(bare_path(tmp_path)), "HOME": str(tmp_path),
           "VASTSIM_SSHD": str(tmp_path / "no" / "sshd")}
    start = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT), "--check"], env=env, capture_output=True,
                          text=True, timeout=30)
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    for tool, package in (("sshd", "openssh-server"), ("ssh", "openssh-client"),
                          ("rsync", "rsync"), ("git", "git"), ("unshare", "util-linux"),
                          ("tar", "tar"), ("python3 -m venv", "python3-venv")):
        assert f"  {tool} ({package}:" in proc.stderr, (tool, proc.stderr)
    assert "sudo apt-get install -y openssh-server openssh-client" in proc.stderr
    assert "installing" not in proc.stderr  # --check never installs
    assert took < 10, took  # fails at once, not after a slow step


def test_this_machine_has_everything_the_project_needs():
    proc = subprocess.run([str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_an_unknown_option_is_refused():
    proc = subprocess.run([str(SCRIPT), "--instal"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown option '--instal'" in proc.stderr


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
