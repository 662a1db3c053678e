"""The `pulumi` CLI as the tasks use it: one stack, the project's environment, clear errors.

Output of long commands (up, destroy) streams as pulumi prints it, so the provider's progress
lines are seen live; short ones are captured. A quiet stack (`verbose=False`, what deploy uses
unless --verbose) shows only the provider's own `vast-gpu:` lines, once each, and the whole
output when the command fails. Every write goes through workflow.console: a closed pipe must
not stop a destroy half way.
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
from typing import Any, TextIO

from tools.pulumi_env import pulumi_env
from workflow.console import say
from workflow.errors import PulumiError, WorkflowError
from workflow.paths import PROJECT_DIR

PROJECT = "vast-gpu"  # the name in Pulumi.yaml; labels carry it
PROVIDER_MARK = "vast-gpu: "
"""The provider's progress lines carry it (providers/instance.py); quiet mode keeps them."""
FAILURE_LINES = 400
"""Lines of pulumi's output kept to show when a quiet command fails."""

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
    verbose: bool = True
    """False: of up/destroy's output only the provider's lines (and everything on failure)."""
    out: TextIO | None = None
    """Where streamed output goes; None: sys.stdout at the time."""

    def env(self) -> dict[str, str]:
        return pulumi_env(self.name, {**os.environ, **self.extra_env})

    def capture(self, *args: str, stack: bool = True) -> str:
        cmd = self._cmd(args, stack)
        proc = subprocess.run(cmd, cwd=self.program, env=self.env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise PulumiError(cmd, proc.returncode, proc.stdout + proc.stderr)
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
        shown: set[str] = set()
        try:
            self._echo(proc, seen, shown)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            say(f"\n{INTERRUPT_NOTE}", sys.stderr)
            try:
                self._echo(proc, seen, shown)
            except KeyboardInterrupt:
                proc.terminate()
            proc.wait()
            raise
        code = proc.wait()
        if code != 0:
            if not self.verbose:
                say(f"`{' '.join(cmd)}` failed; its output:", self.out)
                for line in seen:
                    say(line.rstrip("\n"), self.out)
            raise PulumiError(cmd, code, "".join(seen))

    def _echo(self, proc: subprocess.Popen[str], seen: list[str], shown: set[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            del seen[:-FAILURE_LINES]
            if self.verbose:
                say(line.rstrip("\n"), self.out)
                continue
            at = line.find(PROVIDER_MARK)
            message = line[at:].rstrip() if at >= 0 else ""
            if message and message not in shown:  # live, and again under Diagnostics
                shown.add(message)
                say(message, self.out)

    def _cmd(self, args: tuple[str, ...], stack: bool) -> list[str]:
        cmd = ["pulumi", *args, "--non-interactive"]
        return [*cmd, "--stack", self.name] if stack else cmd

    # -- the operations the tasks need ----------------------------------------------------

    def exists(self) -> bool:
        listed = json.loads(self.capture("stack", "ls", "--json", stack=False) or "[]")
        return any(s.get("name") == self.name for s in listed)

    def ensure(self, *, select: bool = True) -> None:
        """Create the stack if it is new; `select=False` leaves the user's selection alone."""
        if not self.exists():
            self.capture("stack", "init", self.name, *([] if select else ["--no-select"]),
                         stack=False)

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.capture("config", "set", *(["--secret"] if secret else []), key, value)

    def up(self, *, refresh: bool = False) -> None:
        """`refresh`: ask vast.ai first, so an instance that vanished is rented anew."""
        self.stream("up", "--yes", "--skip-preview", *(["--refresh"] if refresh else []))

    def destroy(self) -> None:
        self.stream("destroy", "--yes", "--skip-preview")

    def remove(self, *, force: bool = False) -> None:
        """`force`: also when state still lists resources (teardown checked they are gone).
        `pulumi stack rm` unselects whatever stack was selected, even another one: we select
        it again, so the user's selection survives a deploy."""
        selected = selected_stack_or_none(self.program)
        self.capture("stack", "rm", self.name, "--yes", *(["--force"] if force else []),
                     stack=False)
        if selected and selected != self.name:
            self.capture("stack", "select", selected, stack=False)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.capture("stack", "output", "--json") or "{}")

    def resources(self) -> list[dict[str, Any]]:
        deployment = json.loads(self.capture("stack", "export"))["deployment"]
        return list(deployment.get("resources") or [])


def selected_stack_or_none(program: Path = PROJECT_DIR) -> str | None:
    """The stack `pulumi stack select` chose in this project, None if none."""
    try:
        return Stack("", program).capture("stack", "--show-name", stack=False).strip() or None
    except PulumiError:
        return None


def selected_stack(program: Path = PROJECT_DIR) -> str:
    """The stack `pulumi stack select` chose in this project; an error that says how if none."""
    name = selected_stack_or_none(program)
    if not name:
        raise WorkflowError("no stack selected: pass --stack NAME, or `pulumi stack select NAME`")
    return name


def list_stacks(program: Path = PROJECT_DIR) -> list[str]:
    """Names of every stack of the project in the current backend."""
    probe = Stack("", program)
    return [s["name"] for s in json.loads(probe.capture("stack", "ls", "--json", stack=False))]


def known_instances(program: Path = PROJECT_DIR) -> dict[int, str]:
    """Every instance id in some stack's state -> that stack's name."""
    known: dict[int, str] = {}
    for name in list_stacks(program):
        for r in Stack(name, program).resources():
            if r["type"].endswith("vast:Instance") and r.get("id"):
                known[int(r["id"])] = name
    return known


def stack_holding(instance_id: int, program: Path = PROJECT_DIR) -> str | None:
    """The stack whose state has the instance, None if none does."""
    return known_instances(program).get(instance_id)


def stack_for(name: str | None, instance_id: int | None, program: Path = PROJECT_DIR) -> Stack:
    """`name`, else the stack whose state holds `instance_id` (said, for the old habit of
    naming only the instance), else the selected one."""
    if name:
        return Stack(name, program)
    if instance_id is None:
        return Stack(selected_stack(program), program)
    holder = stack_holding(instance_id, program)
    if holder is None:
        raise WorkflowError(f"instance {instance_id} is in no stack of this project: "
                            "`inv instances` lists your instances and the stack of each")
    say(f"stack {holder!r} holds instance {instance_id}")
    return Stack(holder, program)
