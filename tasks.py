"""invoke tasks (`inv --list`, `inv --help TASK`): a thin UI over workflow/, providers/, remote/.

Every task that works on an instance takes --stack (default: the stack that holds --instance,
else the selected pulumi stack) and finds the machine through `pulumi stack output --json`.
Errors the packages raise on purpose end the task with their message and exit code 1; a failed
task in a batch exits 1 too. The vast-* tasks are the old script's make targets (Makefile).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import invoke
from invoke import Context, Exit

from providers.errors import VastError
from remote.batch import read_tasks, tasks_from_argv
from remote.errors import RemoteError
from remote.pull import pull as pull_dir
from remote.shell import interactive_shell
from remote.sync import sync as sync_tree
from vastsim.server import DEFAULT_BOOT_SECONDS, DEFAULT_PORT, DEFAULT_STATE_DIR
from workflow import demo as demo_flow
from workflow import oldscript
from workflow.attach import attach_job, batch_status_lines, start_job
from workflow.connect import check_alive, connect, target_for
from workflow.console import safe_std_streams
from workflow.deploy import DeployOptions, settings_from
from workflow.deploy import deploy as deploy_job
from workflow.errors import WorkflowError
from workflow.jobs import check_job, default_job, job_for_pull
from workflow.outputs import instance_id_of, parse_outputs
from workflow.paths import pulled_dir
from workflow.pulumi import Stack, selected_stack_or_none
from workflow.pulumi_env import ROOT
from workflow.search import offer_table, selection_for, summary
from workflow.settings import stack_settings
from workflow.source import source_for
from workflow.stacks import scan_project, stack_for
from workflow.status import status_lines
from workflow.sweep import account_lines, destroy_all, sweep_account
from workflow.teardown import destroy_one, finish_kept
from workflow.vast import client_for


def task(**kwargs: Any) -> Any:
    """invoke's @task with long flags only: short ones would shadow -h (help) and clash."""
    return invoke.task(auto_shortflags=False, **kwargs)


STACK_HELP = "pulumi stack to work on (default: the one holding --instance, else the selected)"
KEY_HELP = "private key to log in with (default: the stack's sshPublicKey pair, else ~/.ssh/id_*)"
INSTANCE_HELP = "instance id, for a stack of several (see `inv status`)"
JOB_HELP = ("job name: logs go to work_remote/<job>/, /work to work_remote/<job>/work/ "
            "(default vast-gpu-YYYYMMDD_HHMMSS)")
SRC_HELP = ("directory to upload (default: the stack's vast-gpu:src, else the current "
            "directory unless it is vast-gpu's checkout)")


@contextmanager
def _errors() -> Iterator[None]:
    """Our errors as a message and exit 1; prints that cannot fail (workflow/console.py)."""
    try:
        with safe_std_streams():
            yield
    except (VastError, RemoteError, WorkflowError) as exc:
        raise Exit(f"error: {exc}", code=1) from exc


def _stack(name: str | None, instance: str | None = None) -> Stack:
    """--stack, else the stack whose state holds --instance (said), else the selected one."""
    return stack_for(name, instance_id_of(instance))


def _outputs(stack: Stack):
    return parse_outputs(stack.name, stack.outputs())


def _tasks_from(c: Context, tasks_file: str | None) -> list:
    if tasks_file:
        path = Path(tasks_file)
        if not path.exists():
            raise Exit(f"error: tasks file {tasks_file} not found in {Path.cwd()}", code=1)
        return read_tasks(path)
    if "--" in sys.argv:  # the words themselves: invoke's c.remainder has lost their quoting
        words = sys.argv[sys.argv.index("--") + 1:]
        if words:
            return tasks_from_argv(words)
    raise Exit("error: give --tasks FILE or the task after --, e.g. `inv run -- sine 440`", code=1)


@task(help={"stack": STACK_HELP})
def up(c: Context, stack: str | None = None) -> None:
    """Rent: `pulumi up --refresh` on the stack (created if new): an instance that vanished
    is rented anew; returns once SSH accepts your key."""
    with _errors():
        s = _stack(stack)
        s.ensure()
        s.up(refresh=True)


@task(help={"stack": STACK_HELP,
            "instance": "destroy only this instance id (verified), then refresh the stack"})
def down(c: Context, stack: str | None = None, instance: str | None = None) -> None:
    """Destroy everything the stack rented (or one instance), and check that it is gone."""
    with _errors():
        instance_id = instance_id_of(instance)
        if instance_id is not None and not stack and instance_id not in scan_project().holders:
            print(f"instance {instance_id} is in no stack: destroying it through the API")
            destroy_all(client_for(_account_stack()), [instance_id], print)
            return
        s = _stack(stack, instance)
        if instance_id is None:
            s.destroy()
        else:
            destroy_one(s, instance_id)
        finish_kept(s)


@task(help={"stack": STACK_HELP, "ssh_key": KEY_HELP})
def status(c: Context, stack: str | None = None, ssh_key: str | None = None) -> None:
    """The stack's outputs, the live state of each instance, and its batches (running/done,
    task k of n, the last line)."""
    with _errors():
        s = _stack(stack)
        outputs = _outputs(s)
        for line in status_lines(s, outputs):
            print(line)
        for line in batch_status_lines(s, outputs, ssh_key):
            print(line)


@task(help={
    "stack": "take the settings from this stack (default: the selected one, if any)",
    "query": "offer filter in the vast CLI grammar (overrides the stack's)",
    "order": "ranking, e.g. dph+ (overrides the stack's)",
    "disk": "GB of disk to price in",
    "limit": "rows to show (default 20)",
    "hours": "hours to estimate the cost for (default: the stack's expectedHours, else 1)",
})
def search(
    c: Context, stack: str | None = None, query: str | None = None, order: str | None = None,
    disk: str | None = None, limit: int = 20, hours: str | None = None,
) -> None:
    """The offers a rent would choose from, best first, exactly as `pulumi up` would rank them
    (price cap, bid, maxCost included); rents nothing."""
    with _errors():
        s = Stack(stack) if stack else _account_stack()
        settings = stack_settings(s, {"query": query, "order": order, "disk": disk,
                                      "expectedHours": hours}, image_required=False)
        selection = selection_for(settings)
        shown = selection.candidates[:limit]
        where = f"stack {s.name!r}" if s else "no stack, the defaults"
        print(f"{len(selection.candidates)} offer(s) for: {settings.query}  (order "
              f"{settings.order}, $/h with {settings.disk_gb:g} GB disk; {where}; "
              f"the first {len(shown)} shown)")
        print(offer_table(shown))
        for note in selection.notes:
            print(note)
        rent, est = summary(selection, settings)
        print(f"{rent}\nchosen (first) {est}")


@task(help={"stack": STACK_HELP, "src": SRC_HELP, "ssh_key": KEY_HELP,
            "method": "auto, tar or rsync", "instance": INSTANCE_HELP})
def sync(c: Context, stack: str | None = None, src: str | None = None,
         ssh_key: str | None = None, method: str = "auto", instance: str | None = None) -> None:
    """Upload the source tree (git-tracked + untracked-not-ignored, minus .vastignore) to appDir."""
    with _errors():
        s = _stack(stack, instance)
        source = source_for(src, s)
        source.check()
        print(f"sync: source {source.describe()}")
        outputs = _outputs(s)
        with connect(s, outputs, outputs.pick(instance), ssh_key=ssh_key) as conn:
            done = sync_tree(conn, source.path, outputs.app_dir, method=method)
        print(f"sync: {done.describe()}")


@task(help={"stack": STACK_HELP, "tasks": "tasks file: one `./run-direct` line per line",
            "job": JOB_HELP, "ssh_key": KEY_HELP, "instance": INSTANCE_HELP,
            "detach": "start the batch under the instance's supervisor and return; it holds "
                      "the instance alive while it runs (`inv attach` follows it)",
            "resume": "rerun only the tasks of --job's batch that did not end with exit 0 "
                      "(the same task list)",
            "pull_each": "pull workDir into the job's folder as each task ends"})
def run(c: Context, stack: str | None = None, tasks: str | None = None, job: str | None = None,
        ssh_key: str | None = None, instance: str | None = None, detach: bool = False,
        resume: bool = False, pull_each: bool = False) -> None:
    """Run each task as ./run-direct <line> in appDir (or `inv run -- LINE`); logs, summary.
    The job is remembered: `inv pull` without --job brings its results to the same folder."""
    with _errors():
        batch = _tasks_from(c, tasks)
        if job:
            check_job(job)
        s, inst = _stack(stack, instance), instance_id_of(instance)
        start_job(s, batch, job=job, instance=inst, ssh_key=ssh_key, detach=detach,
                  resume=resume, pull_each=pull_each)


@task(help={"stack": STACK_HELP, "job": "the job to follow (default: the stack's latest)",
            "ssh_key": KEY_HELP, "instance": INSTANCE_HELP})
def attach(c: Context, stack: str | None = None, job: str | None = None,
           ssh_key: str | None = None, instance: str | None = None) -> None:
    """Follow a supervised batch from where its local logs end, then its summary; Ctrl-C
    leaves a detached batch running (and stops an attached one)."""
    with _errors():
        if job:
            check_job(job)
        attach_job(_stack(stack, instance), job=job, instance=instance_id_of(instance),
                   ssh_key=ssh_key)


@task(help={"stack": STACK_HELP, "job": JOB_HELP, "ssh_key": KEY_HELP,
            "instance": INSTANCE_HELP})
def pull(c: Context, stack: str | None = None, job: str | None = None,
         ssh_key: str | None = None, instance: str | None = None) -> None:
    """Bring workDir home to work_remote/<job>/work/ (default: the stack's latest job, the one of
    the last `inv run`/`inv deploy --keep`); incremental, never deletes local files."""
    with _errors():
        if job:
            check_job(job)
        s = _stack(stack, instance)
        outputs = _outputs(s)
        inst = outputs.pick(instance)
        job, why = job_for_pull(s.name, job)
        print(f"pull: job {job} ({why}) -> {pulled_dir(job)}")
        with connect(s, outputs, inst, ssh_key=ssh_key) as conn:
            got = pull_dir(conn, outputs.work_dir, local_dir=pulled_dir(job))
        print(f"pull: {got.describe()}")


@task(help={"stack": STACK_HELP, "instance": INSTANCE_HELP,
            "tail": "how many of the last lines (default 200)"})
def logs(c: Context, stack: str | None = None, instance: str | None = None,
         tail: int = 200) -> None:
    """The instance's log as vast.ai keeps it: onstart and container output (`vastai logs`).
    Where to look when a boot or the dead-man switch misbehaves."""
    with _errors():
        s = _stack(stack, instance)
        inst = _outputs(s).pick(instance)
        client = client_for(s)
        try:
            text = client.instance_logs(inst.instance_id, tail=tail)
        finally:
            client.close()
        print(f"logs: instance {inst.instance_id}, last {tail} lines", file=sys.stderr)
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


@task(help={"stack": STACK_HELP, "ssh_key": KEY_HELP, "instance": INSTANCE_HELP})
def shell(c: Context, stack: str | None = None, ssh_key: str | None = None,
          instance: str | None = None) -> None:
    """An interactive shell on the instance, in appDir."""
    with _errors():
        s = _stack(stack, instance)
        outputs = _outputs(s)
        inst = outputs.pick(instance)
        check_alive(s, inst.instance_id)
        code = interactive_shell(target_for(outputs, inst, ssh_key=ssh_key), outputs.app_dir)
        if code:
            raise Exit(code=code)


@task(help={
    "tasks": "tasks file (or give the task after --)", "job": JOB_HELP,
    "base": "stack whose config the job's stack starts from",
    "image": "Docker image (else VAST_IMAGE, else the base stack's)",
    "disk": "disk GB (else VAST_DISK, ...)", "query": "offer query (else VAST_QUERY, ...)",
    "src": SRC_HELP + "; base stack's vast-gpu:src",
    "keep": "keep the instance afterwards (`inv down --stack ...` later)",
    "shell": "a shell on the instance: without tasks on a fresh instance that is kept (the "
             "old script's --shell); with tasks after them, before teardown",
    "no_sync": "skip the upload", "no_pull": "skip bringing /work home", "ssh_key": KEY_HELP,
    "dry_run": "print every step, and the offer a rent would choose with its cost estimate; "
               "rent nothing",
    "verbose": "show pulumi's own output too (else only the provider's lines; all of it on "
               "failure)",
    "hours": "expected hours, for the cost estimate and --max-cost (stack key expectedHours)",
    "max_cost": "refuse to rent when the estimate exceeds these dollars (stack key maxCost)",
    "pull_gb": "expected GB to pull home, for the estimate (stack key expectedPullGB)",
    "pull_each": "pull workDir after every task, so a lost instance loses only the running "
                 "task's output (on; --no-pull-each: only at the end)",
    "on_lost": "when the instance is outbid or lost: resume (a new instance runs the "
               "unfinished tasks; default for a bid) or stop (default on-demand)",
    "max_lost": "instances a job may lose before it stops (2)",
})
def deploy(
    c: Context, tasks: str | None = None, job: str | None = None, base: str | None = None,
    image: str | None = None, disk: str | None = None, query: str | None = None,
    src: str | None = None, keep: bool = False, shell: bool = False, no_sync: bool = False,
    no_pull: bool = False, ssh_key: str | None = None, dry_run: bool = False,
    verbose: bool = False, hours: str | None = None, max_cost: str | None = None,
    pull_gb: str | None = None, pull_each: bool = True, on_lost: str | None = None,
    max_lost: int = 2,
) -> None:
    """The whole job in one command: own stack, up, sync, run, pull, destroy (also on Ctrl-C)."""
    with _errors():
        alone = shell and not tasks and "--" not in sys.argv
        deploy_job(_deploy_options(
            [] if alone else _tasks_from(c, tasks), job=job, base=base, src=src,
            flags={"image": image, "disk": disk, "query": query, "expectedHours": hours,
                   "maxCost": max_cost, "expectedPullGB": pull_gb},
            keep=keep, shell=shell, no_sync=no_sync, no_pull=no_pull, ssh_key=ssh_key,
            dry_run=dry_run, verbose=verbose, pull_each=pull_each, on_lost=on_lost,
            max_lost=max_lost))


def _deploy_options(batch: list, *, job: str | None, base: str | None, src: str | None,
                    flags: dict[str, str | None], **switches: Any) -> DeployOptions:
    source = None if switches.get("no_sync") else source_for(src, Stack(base) if base else None)
    return DeployOptions(
        tasks=batch, job=check_job(job) if job else default_job(), base_stack=base,
        settings=settings_from(flags, os.environ), src=source.path if source else None,
        src_origin=source.origin if source else "", **switches)


@task(help={"args": "the old script's flags in one string (make's ARGS=; `--help` lists them)",
            "tasks": "tasks file (make's TASKS=)", "src": SRC_HELP + " (make's SRC=)",
            "stack": "base stack (make's STACK=; default: the selected one, if any)"})
def vast_run(c: Context, args: str = "", tasks: str | None = None, src: str | None = None,
             stack: str | None = None) -> None:
    """`make vast-run`: the old script's whole job, ARGS in its flags (workflow/oldscript.py)."""
    with _errors():
        old = oldscript.parse_args(args, tasks)
        if old.help:
            print(oldscript.USAGE)
            return
        batch = (_tasks_from(c, old.tasks_file) if old.tasks_file
                 else oldscript.inline_tasks(old.task_words) if old.task_words else [])
        base, flags = oldscript.base_and_image(stack, os.environ)
        deploy_job(_deploy_options(
            batch, job=old.job, base=base, src=src, flags=flags, keep=old.keep,
            shell=old.shell, no_sync=old.no_sync, no_pull=old.no_pull, ssh_key=old.ssh_key,
            dry_run=old.dry_run))


def _account_stack() -> Stack | None:
    """The selected stack, None if none: account-wide calls use its apiUrl, search its
    settings."""
    name = selected_stack_or_none()
    return Stack(name) if name else None


@task()
def instances(c: Context) -> None:
    """Every instance of your vast.ai account (the old `make vast-status`), with its stack."""
    with _errors():
        client = client_for(_account_stack())
        rows = client.list_instances()
        for line in account_lines(rows, scan_project(), time.time()):
            print(line)
        if not rows:
            print("no instances: nothing bills")


@task(help={"yes": "destroy what is found (default: only list it)"})
def sweep(c: Context, yes: bool = False) -> None:
    """Instances with our labels that no stack knows: list them, or destroy with --yes."""
    with _errors():
        sweep_account(client_for(_account_stack()), scan_project(), destroy=yes, out=print)


@task(help={
    "port": f"TCP port on 127.0.0.1, 0 = any free one (default {DEFAULT_PORT})",
    "state_dir": f"where instances and the ledger are kept (default {DEFAULT_STATE_DIR})",
    "boot_seconds": f"seconds from rent to running (default {DEFAULT_BOOT_SECONDS:g})",
    "faults": "JSON file of faults to inject (see vastsim/faults.py)",
})
def sim(c: Context, port: int = DEFAULT_PORT, state_dir: str = str(DEFAULT_STATE_DIR),
        boot_seconds: float = DEFAULT_BOOT_SECONDS, faults: str | None = None) -> None:
    """Run vastsim, the local vast.ai, until Ctrl-C; it prints VAST_URL and VAST_API_KEY."""
    argv = [sys.executable, "-m", "vastsim", "serve", "--port", str(port),
            "--state-dir", state_dir, "--boot-seconds", str(boot_seconds)]
    if faults:
        argv += ["--faults", faults]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.execve(sys.executable, argv, {**os.environ, "PYTHONPATH": path})  # vastsim owns Ctrl-C


@task()
def demo(c: Context) -> None:
    """The whole job against vastsim: start it, deploy examples/demo, list results, stop it."""
    with _errors():
        demo_flow.run_demo()
