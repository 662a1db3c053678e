"""`inv deploy`: the old bash script in one command, with teardown that cannot be skipped.

A stack of its own for the job (from a base stack's config plus flags or VAST_IMAGE,
VAST_DISK, VAST_QUERY), then up, sync, run, pull, destroy, stack removed. Teardown runs in
`finally`, and SIGTERM is turned into the same path as Ctrl-C, unless `keep` is set. While
teardown runs, further Ctrl-C/SIGTERM are noted and ignored: abandoning it would leave the
machine billing. The job's stack is always a new one: on a shared backend a stack of the same
name is someone else's, and deploy neither rents into it nor tears it down.
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

from providers.cost import gb
from providers.errors import SelectionError
from remote.batch import BatchResult, Task, run_batch
from remote.pull import pull
from remote.ssh import Connection
from remote.sync import select_files, sync
from workflow.connect import target_for
from workflow.errors import TasksFailed
from workflow.outputs import parse_outputs
from workflow.paths import PROJECT_DIR, WORK_REMOTE
from workflow.pulumi import PROJECT, Stack
from workflow.report import RunReport
from workflow.search import selection_for, summary
from workflow.settings import stack_settings
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
        for line in dry_run_estimate(opts):
            print(f"deploy: {line}", file=out)
        print("deploy: dry run: nothing rented", file=out)
        return None
    stack = Stack(opts.stack_name)
    result: BatchResult | None = None
    report = RunReport("deploy", opts.job, stack.name, kept=opts.keep)
    created = False  # never tear down a stack this run did not make: it may be a teammate's
    with _sigterm_as_interrupt():
        try:
            stack.create(f"its job name {opts.job!r} is taken (a teammate's job, or an earlier "
                         "--keep): pass another --job; nothing was rented")
            created = True
            _configure_stack(stack, opts)
            with report.phase("up"):
                stack.up()
            raw = stack.outputs()
            outputs = parse_outputs(stack.name, raw)
            inst = outputs.pick()
            report.set_instance(raw, inst.instance_id)
            target = target_for(outputs, inst, ssh_key=opts.ssh_key)
            with Connection(target) as conn:
                if not opts.no_sync:
                    with report.phase("sync"):
                        report.bytes_sent = sync(conn, opts.src, outputs.app_dir).bytes_sent
                try:
                    with report.phase("tasks"):
                        result = run_batch(
                            conn, opts.tasks, app_dir=outputs.app_dir,
                            logs_dir=opts.results_dir / "logs", out=out,
                        )
                finally:
                    if result is not None:
                        report.set_batch(result)
                    else:
                        report.tasks_from_summary(opts.results_dir / "logs")
                if not opts.no_pull:
                    with report.phase("pull"):
                        pulled = pull(conn, outputs.work_dir, local_dir=opts.results_dir)
                    report.bytes_received = pulled.nbytes
            if opts.shell and open_shell is not None:
                open_shell(stack)
            if result is not None and result.failed:
                report.outcome = f"{result.failed} of {len(result.results)} task(s) failed"
        except BaseException as exc:
            report.outcome = f"stopped: {type(exc).__name__}: {exc}".splitlines()[0]
            raise
        finally:
            if created and not opts.keep:
                with report.phase("destroy"):
                    _teardown(stack, out)
            report.save_and_print(opts.results_dir, out, "deploy: ")
    if result is not None and result.failed:
        raise TasksFailed(result.failed, len(result.results))
    return result


def _configure_stack(stack: Stack, opts: DeployOptions) -> None:
    if opts.base_stack:
        stack.capture("config", "cp", "--stack", opts.base_stack, "--dest", stack.name, stack=False)
    settings = dict(opts.settings)
    if not opts.no_sync and "expectedSyncGB" not in settings:  # what sync will send, exactly
        settings["expectedSyncGB"] = repr(sync_gb(opts.src))
    if opts.ssh_key and "sshPublicKey" not in settings:  # attach the key we will log in with
        settings["sshPublicKey"] = str(Path(opts.ssh_key).expanduser()) + ".pub"
    for key, value in settings.items():
        stack.set_config(f"vast-gpu:{key}", value)


def sync_gb(src: Path) -> float:
    """GB a first sync of src sends: the size of every selected file (remote/sync.py)."""
    return gb(sum(f.size for f in select_files(src)))


def dry_run_estimate(opts: DeployOptions) -> list[str]:
    """The offer a rent would choose now and its estimate: the provider's own selector
    (providers/offers.py) on a search, which is free and rents nothing."""
    base = Stack(opts.base_stack) if opts.base_stack else None
    settings = stack_settings(base, opts.settings)
    upload = 0.0 if opts.no_sync else (
        None if "expectedSyncGB" in opts.settings else sync_gb(opts.src))
    try:
        selection = selection_for(settings, sync_gb=upload)
    except SelectionError as exc:
        return [f"a real run would refuse to rent: {exc}"]
    return [*selection.notes, *summary(selection, settings)]


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
