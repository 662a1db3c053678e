"""Run the real `pulumi` CLI from tests, with the project's environment and an isolated backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflow.pulumi_env import ROOT, pulumi_env

DEFAULT_TIMEOUT = 240.0


class PulumiFailed(AssertionError):
    """A pulumi command exited non-zero; the message holds the command, code and output tail."""


@dataclass
class PulumiCli:
    """`pulumi` bound to one program directory, one stack and one file backend."""

    program: Path
    stack: str
    backend: Path
    extra_env: Mapping[str, str]

    def env(self) -> dict[str, str]:
        base = {**os.environ, "PULUMI_BACKEND_URL": self.backend.as_uri(), **self.extra_env}
        base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")]))
        return pulumi_env(self.stack, base)

    def run(self, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
        """`pulumi ARGS --stack STACK`; pass stack=False-style commands through `run_raw`."""
        return self.run_raw(*args, "--stack", self.stack, check=check, timeout=timeout)

    def attempt(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """`pulumi ARGS --stack STACK` that may fail: (exit code, stdout + stderr)."""
        cmd = ["pulumi", *args, "--stack", self.stack]
        proc = subprocess.run(
            cmd, cwd=self.program, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        return proc.returncode, proc.stdout + proc.stderr

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """`pulumi ARGS --stack STACK` in the background, in its own process group."""
        return subprocess.Popen(
            ["pulumi", *args, "--stack", self.stack], cwd=self.program, env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def run_raw(self, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> str:
        cmd = ["pulumi", *args]
        proc = subprocess.run(
            cmd, cwd=self.program, env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise PulumiFailed(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        return proc.stdout

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets"))

    def state(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "export"))

    def resources(self, type_suffix: str) -> list[dict[str, Any]]:
        deployment = self.state()["deployment"]
        return [r for r in deployment.get("resources") or [] if r["type"].endswith(type_suffix)]


def pulumi_available() -> bool:
    return shutil.which("pulumi", path=pulumi_env()["PATH"]) is not None
