"""`inv deploy`: the old bash script in one command, with teardown that cannot be skipped.

A stack of its own for the job (from a base stack's config plus flags or VAST_IMAGE,
VAST_DISK, VAST_QUERY), then up, sync, run, pull, destroy, stack removed. Teardown runs in
`finally`, and SIGTERM is turned into the same path as Ctrl-C, unless `keep` is set. While
teardown runs, further Ctrl-C/SIGTERM are noted and ignored: abandoning it would leave the
machine billing.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from remote.batch import BatchResult, Task, run_batch
from remote.pull import pull
from remote.ssh import Connection
from remote.sync import sync
from workflow.connect import target_for
from workflow.errors import TasksFailed
from workflow.outputs import parse_outputs
from workflow.paths import PROJECT_DIR, WORK_REMOTE
from workflow.pulumi import PROJECT, Stack
from workflow.sweep import destroy_all, of_stack
from workflow.vast import client_for

ENV_OVERRIDES = {"VAST_IMAGE": "image", "VAST_DISK": "disk", "VAST_QUERY": "query"}
JOB_TIME_FORMAT = "%Y%m%d_%H%M%S"


def default_job() -> str:
    return "vast-gpu-" + time.strftime(JOB_TIME_FORMAT)


@dataclass(frozen=True)
class DeployOptions:
    tasks: Sequence[Task]
    job: str
    base_stack: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    """Stack config overrides (image, disk, query); flags win over VAST_* env vars."""
    src: Path = PROJECT_DIR
    keep: bool = False
    shell: bool = False
    no_sync: bool = False
    no_pull: bool = False
    ssh_key: str | None = None
    dry_run: bool = False
    stack_prefix: str = "job"
    """Used without a base stack; `local` makes a vastsim stack (fixed passphrase, see README)."""

    @property
    def stack_name(self) -> str:
        return f"{self.base_stack or self.stack_prefix}-{self.job}"

    @property
    def results_dir(self) -> Path:
        return WORK_REMOTE / self.job


def settings_from(flags: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, str]:
    """Flags win over the VAST_IMAGE / VAST_DISK / VAST_QUERY env vars of the old script."""
    out = {key: env[var] for var, key in ENV_OVERRIDES.items() if env.get(var)}
    out.update({k: v for k, v in flags.items() if v})
    return out


def plan(opts: DeployOptions) -> list[str]:
    """Every step deploy will take, in words (what --dry-run prints)."""
    base = f"config of stack {opts.base_stack!r}" if opts.base_stack else "no base stack"
    overrides = ", ".join(f"{k}={v!r}" for k, v in opts.settings.items()) or "none"
    steps = [
        f"create stack {opts.stack_name!r} from {base}; settings: {overrides}",
        "pulumi up: rent one instance and wait until SSH accepts the key",
    ]
    if not opts.no_sync:
        steps.append(f"sync {opts.src} -> appDir")
    steps.append(f"run {len(opts.tasks)} task(s) as ./run-direct <line> in appDir")
    steps += [f"    {t.line}" for t in opts.tasks]
    if not opts.no_pull:
        steps.append(f"pull workDir -> {opts.results_dir}")
    if opts.shell:
        steps.append("open an interactive shell in appDir")
    if opts.keep:
        steps.append(f"keep the instance; `inv down --stack {opts.stack_name}` destroys it")
    else:
        steps.append(f"pulumi destroy (verified) and remove stack {opts.stack_name!r}")
    return steps


def deploy(
    opts: DeployOptions, *, out: TextIO = sys.stdout,
    open_shell: Callable[[Stack], None] | None = None,
) -> BatchResult | None:
    """Run the whole job; raises TasksFailed when a task failed (after teardown)."""
    number = 0
    for step in plan(opts):
        if step.startswith("    "):
            print(f"deploy: {step}", file=out)
        else:
            number += 1
            print(f"deploy [{number}] {step}", file=out)
    if opts.dry_run:
        print("deploy: dry run: nothing rented", file=out)
        return None
    stack = Stack(opts.stack_name)
    result: BatchResult | None = None
    with _sigterm_as_interrupt():
        try:
            _create_stack(stack, opts)
            stack.up()
            outputs = parse_outputs(stack.name, stack.outputs())
            target = target_for(outputs, outputs.pick(), ssh_key=opts.ssh_key)
            with Connection(target) as conn:
                if not opts.no_sync:
                    sync(conn, opts.src, outputs.app_dir)
                result = run_batch(
                    conn, opts.tasks, app_dir=outputs.app_dir,
                    logs_dir=opts.results_dir / "logs", out=out,
                )
                if not opts.no_pull:
                    pull(conn, outputs.work_dir, local_dir=opts.results_dir)
            if opts.shell and open_shell is not None:
                open_shell(stack)
        finally:
            if not opts.keep:
                _teardown(stack, out)
    if result is not None and result.failed:
        raise TasksFailed(result.failed, len(result.results))
    return result


def _create_stack(stack: Stack, opts: DeployOptions) -> None:
    stack.ensure()
    if opts.base_stack:
        stack.capture("config", "cp", "--stack", opts.base_stack, "--dest", stack.name, stack=False)
    settings = dict(opts.settings)
    if opts.ssh_key and "sshPublicKey" not in settings:  # attach the key we will log in with
        settings["sshPublicKey"] = str(Path(opts.ssh_key).expanduser()) + ".pub"
    for key, value in settings.items():
        stack.set_config(f"vast-gpu:{key}", value)


def _teardown(stack: Stack, out: TextIO) -> None:
    """pulumi destroy, then anything still carrying this stack's label (a create cut short
    by a second Ctrl-C is in no state), then the stack itself."""
    print(f"deploy: tearing down stack {stack.name!r} (Ctrl-C is ignored until it is done)",
          file=out)
    with _signals_ignored(out):
        if not stack.exists():
            return
        stack.destroy()
        client = client_for(stack)
        try:
            rows = client.list_instances()
            strays = [t.instance_id for t in of_stack(rows, PROJECT, stack.name)]
            destroy_all(client, strays, lambda line: print(f"deploy: {line}", file=out))
        finally:
            client.close()
        stack.remove()
    print("deploy: nothing of this job bills any more", file=out)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_signo: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored(out: TextIO) -> Iterator[None]:
    def note(signo: int, _frame: FrameType | None) -> None:
        print(f"deploy: {signal.Signals(signo).name} ignored: teardown must finish "
              f"(pid {os.getpid()})", file=out)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
