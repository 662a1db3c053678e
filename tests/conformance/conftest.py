"""The official `vastai` CLI (.venv-referee, built by `make setup`) against vastsim, and its
query parser against ours. Under CI=true a missing CLI fails the run instead of skipping it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vastsim.testing import VastSim
from workflow.pulumi_env import ROOT

REFEREE = ROOT / ".venv-referee"
CLI = REFEREE / "bin" / "vastai"
PYTHON = REFEREE / "bin" / "python"


@pytest.fixture(scope="session")
def referee() -> Path:
    if not CLI.exists():
        why = f"no official CLI at {CLI}: run `make setup` (tools/referee-venv.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return CLI


CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def vastai(referee: Path, vastsim: VastSim, tmp_path: Path) -> Iterator[CliRun]:
    """`vastai ARGS...` against vastsim; its config (and any key file) stays in tmp_path.

    ``--url`` is not enough: on every run the CLI asks ``VAST_URL`` (else console.vast.ai) for
    its GPU names, and vast.ai for a newer version, so both are pointed away from the internet.
    Its cache (the GPU names, ``ssh-url``'s last answer) lives in tmp_path too.
    """
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "VAST_URL": vastsim.url,
           "VASTAI_NO_UPDATE_CHECK": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("VAST_API_KEY", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(referee), "--url", vastsim.url, "--api-key", vastsim.api_key,
                               *args], capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert proc.returncode == 0, f"vastai {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    yield run
    assert [u for u in vastsim.unexpected()] == [], "the CLI asked for a route vastsim lacks"
