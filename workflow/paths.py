"""Where the tasks work: the Pulumi project, results and pinned host keys.

VAST_GPU_PROJECT points the tasks at another project directory (one holding a Pulumi.yaml
and stacks/ of this program); the tests use it to keep their stacks out of the repo.
"""

from __future__ import annotations

import os
from pathlib import Path

from tools.pulumi_env import ROOT

PROJECT_DIR = Path(os.environ.get("VAST_GPU_PROJECT") or ROOT).resolve()
WORK_REMOTE = PROJECT_DIR / "work_remote"
KNOWN_HOSTS_DIR = PROJECT_DIR / ".vast-gpu" / "known_hosts"
"""One known_hosts file per stack and instance: a replaced instance starts a fresh pin."""
