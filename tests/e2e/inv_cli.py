"""Run the real `inv` (invoke) from tests: a private project copy, backend and vastsim."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from vastsim.testing import VastSim
from workflow.pulumi_env import ROOT, pulumi_env

EXECVE = re.compile(r'^\d+ +execve\("[^"]*", (\[.*?\]), 0x')
"""One line of `strace -f -e trace=execve`: the argv of a program started."""


class Inv:
    """`python -m invoke` against a private project copy, backend and vastsim."""

    def __init__(self, project: Path, backend: Path | str, sim: VastSim) -> None:
        """backend: a file backend's directory, or a backend URL (postgres://...)."""
        self.project = project
        self.env = {
            **os.environ, "VAST_GPU_PROJECT": str(project), "VAST_URL": sim.url,
            "VAST_API_KEY": sim.api_key, "PYTHONPATH": str(ROOT),
            "PULUMI_BACKEND_URL": backend if isinstance(backend, str) else backend.as_uri(),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "invoke", "-r", str(ROOT), *args]

    def __call__(self, *args: str, check: bool = True, cwd: Path | None = None,
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True,
                              timeout=300, cwd=cwd, input=stdin)
        if check:
            assert proc.returncode == 0, f"inv {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def traced(self, *args: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
        """`inv ARGS` under strace: its result and the argv of every pulumi process it ran."""
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as trace:
            proc = subprocess.run(["strace", "-f", "-qq", "-s", "512", "-e", "trace=execve",
                                   "-e", "signal=none", "-o", trace.name, *self.argv(*args)],
                                  env=self.env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"inv {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
            calls = [ast.literal_eval(m[1]) for line in trace
                     if (m := EXECVE.search(line)) and line.rstrip().endswith("= 0")]
        return proc, [argv for argv in calls if argv[0] == "pulumi"]

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`inv ARGS` in the background (its own session), output captured."""
        return subprocess.Popen(self.argv(*args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def pulumi_argv(self, stack: str, *args: str, on_stack: bool = True) -> list[str]:
        return ["pulumi", *args, "--non-interactive", *(["--stack", stack] if on_stack else [])]
    def make(self, *args: str, check: bool = True, cwd: Path | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`make -f <repo>/Makefile ARGS` (the old script's targets), from `cwd`."""
        proc = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"),
                               *args], env=self.env, capture_output=True, text=True,
                              timeout=300, cwd=cwd or ROOT, input=stdin)
        if check:
            assert proc.returncode == 0, f"make {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def stacks(self) -> list[str]:
        listed = self.pulumi("x", "stack", "ls", "--json", on_stack=False)
        return [s["name"] for s in json.loads(listed)]

    def selected(self) -> str | None:
        """The selected stack of the project copy (None when none is)."""
        proc = subprocess.run(["pulumi", "stack", "--show-name", "--non-interactive"],
                              cwd=self.project, env=pulumi_env(None, self.env),
                              capture_output=True, text=True)
        return proc.stdout.strip() or None

    def pulumi(self, stack: str, *args: str, on_stack: bool = True) -> str:
        return subprocess.run(self.pulumi_argv(stack, *args, on_stack=on_stack),
                              cwd=self.project, env=pulumi_env(stack, self.env),
                              capture_output=True, text=True, check=True).stdout

    def new_stack(self, key: Path, stack: str | None = None) -> str:
        """A vastsim stack (local-* prefix: the fixed passphrase) configured to rent."""
        stack = stack or f"local-t{uuid.uuid4().hex[:6]}"
        self.pulumi(stack, "stack", "init", stack, on_stack=False)
        for k, v in {"image": "img", "sshPublicKey": f"{key}.pub", "readyTimeout": "60"}.items():
            self.pulumi(stack, "config", "set", f"vast-gpu:{k}", v)
        return stack
