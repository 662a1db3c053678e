"""Where the tasks work: the Pulumi project, results, per-stack state and pinned host keys.

A job's folder, work_remote/<job>/, holds what this side writes (logs/NN-<task>.log,
logs/summary.json, report.json) and, in work/, what the instance sends (its workDir). The two
never mix: a task that writes /work/logs/01-x.log or /work/report.json cannot replace the run's
own record of what happened.

VAST_GPU_PROJECT points the tasks at another project directory (one holding a Pulumi.yaml
and stacks/ of this program); the tests use it to keep their stacks out of the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

from workflow.pulumi_env import ROOT

PROJECT_DIR = Path(os.environ.get("VAST_GPU_PROJECT") or ROOT).resolve()
STACKS_DIR = PROJECT_DIR / "stacks"
"""Where the Pulumi.<stack>.yaml files live (`stackConfigDir` in Pulumi.yaml)."""
WORK_REMOTE = PROJECT_DIR / "work_remote"
PULLED = "work"
"""The folder of a job's results where the instance's workDir comes home (see above)."""
STATE_DIR = PROJECT_DIR / ".vast-gpu"
"""Local state of the tasks, per stack (the latest job, pinned host keys); git-ignored."""
KNOWN_HOSTS_DIR = STATE_DIR / "known_hosts"
"""One known_hosts file per stack and instance: a replaced instance starts a fresh pin."""


def pulled_dir(job: str) -> Path:
    """Where `inv pull` / deploy put the instance's workDir: apart from the local logs."""
    return WORK_REMOTE / job / PULLED
