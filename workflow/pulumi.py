"""The `pulumi` CLI as the tasks use it: one stack, the project's environment, clear errors.

Output of long commands (up, destroy) streams as pulumi prints it, so the provider's progress
lines are seen live; short ones are captured. A quiet stack (`verbose=False`, what deploy uses
unless --verbose) shows only the provider's own `vast-gpu:` lines, once each, and the whole
output when the command fails. Every write goes through workflow.console: a closed pipe must
not stop a destroy half way. A command stopped by another one's lock on the stack raises
StackLocked (workflow/locks.py), which says who holds it.
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

from workflow.console import say
from workflow.errors import PulumiError, StackTaken, WorkflowError
from workflow.locks import locked_error, retry_contended
from workflow.paths import PROJECT_DIR
from workflow.pulumi_env import pulumi_env

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
            raise self._error(cmd, code, "".join(seen))

    def _error(self, cmd: list[str], code: int, output: str) -> PulumiError:
        locked = locked_error(cmd, code, output, self.name, self.program)
        return locked if locked is not None else PulumiError(cmd, code, output)

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

    def create(self, hint: str) -> None:
        """A new stack, never one that exists (on a shared backend: perhaps a teammate's)."""
        if self.exists():
            raise StackTaken(self.name, hint)
        try:
            self.capture("stack", "init", self.name, "--no-select", stack=False)
        except PulumiError as exc:
            if "already exists" in exc.output_tail:  # created meanwhile by someone else
                raise StackTaken(self.name, hint) from None
            raise

    def set_config(self, key: str, value: str, *, secret: bool = False) -> None:
        self.capture("config", "set", *(["--secret"] if secret else []), key, value)

    def up(self, *, refresh: bool = False) -> None:
        """`refresh`: ask vast.ai first, so an instance that vanished is rented anew."""
        retry_contended(lambda: self.stream("up", "--yes", "--skip-preview",
                                            *(["--refresh"] if refresh else [])), _note)

    def destroy(self) -> None:
        retry_contended(lambda: self.stream("destroy", "--yes", "--skip-preview"), _note)

    def remove(self, *, force: bool = False) -> None:
        """`force`: also when state still lists resources (teardown checked they are gone).
        `pulumi stack rm` unselects whatever stack was selected, even another one: we select
        it again, so the user's selection survives a deploy."""
        selected = selected_stack_or_none(self.program)
        retry_contended(lambda: self.capture("stack", "rm", self.name, "--yes",
                                             *(["--force"] if force else []), stack=False),
                        _note)
        if selected and selected != self.name:
            self.capture("stack", "select", selected, stack=False)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.capture("stack", "output", "--json") or "{}")

    def deployment(self) -> dict[str, Any]:
        """The state as `pulumi stack export` gives it (secrets stay encrypted; no lock)."""
        return dict(json.loads(self.capture("stack", "export"))["deployment"])


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
    """Names of every stack of the project in the current backend: on a shared DIY backend
    (postgres, s3) the whole team's, since it keeps no owner per stack (pkg/backend/diy)."""
    probe = Stack("", program)
    return [s["name"] for s in json.loads(probe.capture("stack", "ls", "--json", stack=False))]
