"""Which local tree `inv sync` and `inv deploy` upload to appDir, and why that one.

In order: `--src DIR` (relative to where you are); the stack setting `vast-gpu:src` (relative
to the stack file's directory, stacks/); else the directory you run the command from, unless
that is this tool's own checkout, which is refused: its files are not your job, and every task
would fail with exit 127 (no ./run-direct). Every sync prints the choice and its reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workflow.errors import OptionError
from workflow.paths import PROJECT_DIR, STACKS_DIR
from workflow.pulumi import Stack
from workflow.pulumi_env import ROOT
from workflow.settings import raw_config

STACK_SRC = "vast-gpu:src"
"""The stack key of the source tree. (Read here only: one constant, one read.)"""
RUNNER = "run-direct"


@dataclass(frozen=True)
class Source:
    path: Path
    origin: str
    """Why this tree: `--src`, the stack setting, or the current directory."""

    def describe(self) -> str:
        return f"{self.path} ({self.origin})"

    def check(self) -> None:
        """Refuse a tree that is missing or is not a directory (before anything is rented)."""
        if not self.path.is_dir():
            what = "does not exist" if not self.path.exists() else "is not a directory"
            raise OptionError("source tree", str(self.path),
                              f"{what} (from {self.origin}); {HOW_TO_SET}")

    def warnings(self) -> list[str]:
        """What will likely go wrong on the instance, said before it costs anything."""
        if not (self.path / RUNNER).is_file():
            return [f"warning: {self.path} has no ./{RUNNER}: each task runs as "
                    f"`./{RUNNER} <line>` in appDir and fails with exit 127 unless the image "
                    "has one there"]
        return []


HOW_TO_SET = (f"pass --src DIR (SRC=DIR to make), set the stack's `pulumi config set "
              f"{STACK_SRC} DIR`, or run the command from your project's directory (`make -f "
              "<vast-gpu>/Makefile ...` there)")


def source_for(flag: str | None, stack: Stack | None, cwd: Path | None = None) -> Source:
    """The tree to sync: the flag, the stack's setting, else the current directory."""
    if flag:
        return Source(Path(flag).expanduser().resolve(), "--src")
    setting = raw_config(stack).get(STACK_SRC)
    if isinstance(setting, str) and setting:
        path = Path(setting).expanduser()
        return Source((STACKS_DIR / path).resolve(),
                      f"stack {stack.name!r} setting {STACK_SRC}")  # type: ignore[union-attr]
    here = (cwd or Path(os.getcwd())).resolve()
    if here in {ROOT.resolve(), PROJECT_DIR}:
        raise OptionError(
            "source tree", str(here),
            f"is vast-gpu's own checkout, not your job's code; {HOW_TO_SET}",
        )
    return Source(here, "the current directory")
