"""tools/referee-venv.sh: a current .venv-referee is left alone, a changed pin list rebuilds it
from scratch (nothing of the old venv survives). Offline: the pin list here installs nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from workflow.pulumi_env import ROOT

SCRIPT = ROOT / "tools" / "referee-venv.sh"
STAMP = ".venv-referee/.installed-requirements.txt"


def project(tmp_path: Path, requirements: str) -> Path:
    """A copy of the script in a bare project with its own requirements-referee.txt."""
    root = tmp_path / "p"
    (root / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "tools" / SCRIPT.name)
    (root / "requirements-referee.txt").write_text(requirements)
    return root


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(root / "tools" / SCRIPT.name)], capture_output=True,
                          text=True, timeout=240, env={**os.environ, "PIP_NO_INDEX": "1"})


def test_a_current_venv_is_left_alone_and_a_changed_list_rebuilds_it(tmp_path: Path) -> None:
    root = project(tmp_path, "# nothing to install\n")
    venv = root / ".venv-referee"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "vastai").write_text("#!/bin/sh\n")
    (venv / "bin" / "vastai").chmod(0o755)
    (root / STAMP).write_text("# nothing to install\n")
    (venv / "left-from-before").write_text("")

    quiet = run(root)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (venv / "left-from-before").exists()

    (root / "requirements-referee.txt").write_text("# a pin changed\n")
    rebuilt = run(root)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "making .venv-referee" in rebuilt.stdout
    assert not (venv / "left-from-before").exists()  # from scratch, not installed over
    assert (root / STAMP).read_text() == "# a pin changed\n"
