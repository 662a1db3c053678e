"""Where the tasks work: the Pulumi project, results, per-stack state and pinned host keys.

VAST_GPU_PROJECT points the tasks at another project directory (one holding a Pulumi.yaml
and stacks/ of this program); the tests use it to keep their stacks out of the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

from tools.pulumi_env import ROOT

PROJECT_DIR = Path(os.environ.get("VAST_GPU_PROJECT") or ROOT).resolve()
STACKS_DIR = PROJECT_DIR / "stacks"
"""Where the Pulumi.<stack>.yaml files live (`stackConfigDir` in Pulumi.yaml)."""
WORK_REMOTE = PROJECT_DIR / "work_remote"
STATE_DIR = PROJECT_DIR / ".vast-gpu"
"""Local state of the tasks, per stack (the latest job, pinned host keys); git-ignored."""
KNOWN_HOSTS_DIR = STATE_DIR / "known_hosts"
"""One known_hosts file per stack and instance: a replaced instance starts a fresh pin."""
