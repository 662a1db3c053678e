"""The `pulumi` CLI as the tasks use it: one stack, the project's environment, clear errors.

Output of long commands (up, destroy) streams to the terminal as pulumi prints it, so the
provider's progress lines are seen live; short ones are captured. A command stopped by another
one's lock on the stack raises StackLocked (workflow/locks.py), which says who holds it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.pulumi_env import pulumi_env
from workflow.errors import PulumiError, StackTaken, WorkflowError
from workflow.locks import locked_error, retry_contended
from workflow.paths import PROJECT_DIR

PROJECT = "vast-gpu"  # the name in Pulumi.yaml; labels carry it

INTERRUPT_NOTE = (
    "interrupted: pulumi finishes the operation in flight and records it, so nothing is "
    "lost track of; Ctrl-C again stops waiting (a rented instance is then found by its label)"
)


@dataclass
class Stack:
    """One Pulumi stack of the project at `program` (workflow.paths.PROJECT_DIR by default)."""

    name: str
    program: Path = PROJECT_DIR
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return pulumi_env(self.name, {**os.environ, **self.extra_env})

    def capture(self, *args: str, stack: bool = True) -> str:
        cmd = self._cmd(args, stack)
        proc = subprocess.run(cmd, cwd=self.program, env=self.env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise self._error(cmd, proc.returncode, proc.stdout + proc.stderr)
        return proc.stdout

    def stream(self, *args: str, stack: bool = True) -> None:
        """Run with live output; on failure the error repeats the tail of what was printed.

        pulumi runs in its own session, so a Ctrl-C at the terminal reaches us, not it: we
        pass it on once (pulumi then finishes the operation in flight and records it in
        state, so teardown can destroy it), and only a second Ctrl-C stops waiting.
        """
        cmd = self._cmd(args, stack)
        proc = subprocess.Popen(
            cmd, cwd=self.program, env=self.env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )
        seen: list[str] = []
        try:
            self._echo(proc, seen)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            print(f"\n{INTERRUPT_NOTE}", file=sys.stderr, flush=True)
            try:
                self._echo(proc, seen)
            except KeyboardInterrupt:
                proc.terminate()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            raise self._error(cmd, code, "".join(seen))

    def _error(self, cmd: list[str], code: int, output: str) -> PulumiError:
        locked = locked_error(cmd, code, output, self.name, self.program)
        return locked if locked is not None else PulumiError(cmd, code, output)

    @staticmethod
    def _echo(proc: subprocess.Popen[str], seen: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            seen.append(line)
            del seen[:-50]

    def _cmd(self, args: tuple[str, ...], stack: bool) -> list[str]:
        cmd = ["pulumi", *args, "--non-interactive"]
        return [*cmd, "--stack", self.name] if stack else cmd

    # -- the operations the tasks need ----------------------------------------------------

    def exists(self) -> bool:
        listed = json.loads(self.capture("stack", "ls", "--json", stack=False) or "[]")
        return any(s.get("name") == self.name for s in listed)

    def ensure(self) -> None:
        if not self.exists():
            self.capture("stack", "init", self.name, stack=False)

    def create(self, hint: str) -> None:
        """A new stack, never one that exists (on a shared backend: perhaps a teammate's)."""
        if self.exists():
            raise StackTaken(self.name, hint)
        try:
            self.capture("stack", "init", self.name, stack=False)
        except PulumiError as exc:
            if "already exists" in exc.output_tail:  # created meanwhile by someone else
                raise StackTaken(self.name, hint) from None
            raise

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.capture("config", "set", *(["--secret"] if secret else []), key, value)

    def up(self) -> None:
        retry_contended(lambda: self.stream("up", "--yes", "--skip-preview"), _note)

    def destroy(self) -> None:
        retry_contended(lambda: self.stream("destroy", "--yes", "--skip-preview"), _note)

    def remove(self) -> None:
        retry_contended(lambda: self.capture("stack", "rm", self.name, "--yes", stack=False),
                        _note)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.capture("stack", "output", "--json") or "{}")

    def deployment(self) -> dict[str, Any]:
        """The state as `pulumi stack export` gives it (secrets stay encrypted; no lock)."""
        return dict(json.loads(self.capture("stack", "export"))["deployment"])


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def selected_stack(program: Path = PROJECT_DIR) -> str:
    """The stack `pulumi stack select` chose in this project; an error that says how if none."""
    try:
        name = Stack("", program).capture("stack", "--show-name", stack=False).strip()
    except PulumiError:
        name = ""
    if not name:
        raise WorkflowError("no stack selected: pass --stack NAME, or `pulumi stack select NAME`")
    return name


def list_stacks(program: Path = PROJECT_DIR) -> list[str]:
    """Names of every stack of the project in the current backend: on a shared DIY backend
    (postgres, s3) the whole team's, since it keeps no owner per stack (pkg/backend/diy)."""
    probe = Stack("", program)
    return [s["name"] for s in json.loads(probe.capture("stack", "ls", "--json", stack=False))]
