"""The working part of `inv deploy`: sync, the batch, the pull, and a lost instance replaced.

The batch runs under the instance's supervisor and is followed attached (remote/detached.py),
as `inv run` does. With pull-each (deploy's default) workDir comes home after every task
(remote/pulleach.py), so when the instance dies only the running task's output dies with it.

A stream that breaks asks vast.ai why. When the instance will not come back (outbid, stopped,
exited, offline, gone) the job says "instance N was outbid/lost at task k of n" and destroys
it at once (a stopped instance still bills storage). Then, by `--on-lost` (resume for a bid
stack, stop for on-demand) and at most `--max-lost` times: `pulumi up --refresh` rents a new
instance through the same stack, the tree is synced again and only the tasks that did not end
with exit 0 run there. The run report lists every instance the job used and what each cost.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, TextIO

from remote import pullrecord
from remote.batch import BatchResult
from remote.detached import Probe, attach
from remote.errors import InstanceLost, RemoteError, SshError
from remote.pull import pull
from remote.pulleach import PullEach
from remote.ssh import Connection, Target
from remote.supervisor import TaskRecord, start_batch
from remote.sync import sync
from workflow.connect import lost_probe, target_for
from workflow.console import say
from workflow.errors import JobLost
from workflow.outputs import parse_outputs
from workflow.pulumi import Stack
from workflow.report import RunReport
from workflow.settings import stack_settings
from workflow.sweep import destroy_all
from workflow.vast import client_for

if TYPE_CHECKING:
    from workflow.deploy import DeployOptions

ON_LOST = ("resume", "stop")
MAX_LOST = 2
"""Instances a job may lose before it stops: beyond, the machines (or the bid) are the problem."""


class _Stage:
    """How far the work on the current instance got: only a loss before the final pull is
    recovered (after it, every task has ended and nothing is left to resume)."""

    def __init__(self) -> None:
        self.name = "connect"


def work(stack: Stack, opts: DeployOptions, report: RunReport, known: list[int],
         out: TextIO) -> BatchResult | None:
    """Sync, run and pull on the stack's instance; replace it when it is lost (see above).
    `known` gets every instance id the job holds, as soon as it is known, for teardown."""
    done: dict[int, TaskRecord] = {}
    lost = 0
    while True:
        raw = stack.outputs()
        outputs = parse_outputs(stack.name, raw)
        known.extend(i.instance_id for i in outputs.instances if i.instance_id not in known)
        inst = outputs.pick()
        report.set_instance(raw, inst.instance_id)
        probe = lost_probe(stack, inst.instance_id)
        stage = _Stage()
        try:
            return _on_instance(target_for(outputs, inst, ssh_key=opts.ssh_key), outputs.app_dir,
                                outputs.work_dir, opts, report, done, probe, stage, out)
        except SshError as exc:
            state = exc.state if isinstance(exc, InstanceLost) else (
                probe() if stage.name in ("connect", "sync", "tasks") else None)
            if state is None:
                raise
            if isinstance(exc, InstanceLost):
                done.update({r.index: r for r in exc.records if r.exit_code == 0})
            lost += 1
            _replace(stack, opts, report, inst.instance_id, state, done, lost, out)


def _on_instance(target: Target, app_dir: str, work_dir: str, opts: DeployOptions,
                 report: RunReport, done: dict[int, TaskRecord], probe: Probe, stage: _Stage,
                 out: TextIO) -> BatchResult | None:
    with Connection(target) as conn:
        if not opts.no_sync:
            assert opts.src is not None
            stage.name = "sync"
            with report.phase("sync"):
                synced = sync(conn, opts.src, app_dir)
                report.bytes_sent += synced.bytes_sent
                say(f"deploy: sync: {synced.describe()}", out)
        if not opts.tasks:
            return None
        stage.name = "tasks"
        result = _batch(conn, target, app_dir, work_dir, opts, report, done, probe, out)
        if not opts.no_pull:
            stage.name = "pull"
            _pull(conn, work_dir, opts, report, out)
        return result


def _batch(conn: Connection, target: Target, app_dir: str, work_dir: str, opts: DeployOptions,
           report: RunReport, done: dict[int, TaskRecord], probe: Probe,
           out: TextIO) -> BatchResult:
    """The supervised batch, attached; the tasks in `done` (exit 0 on a lost instance) are
    kept, not run again."""
    logs = opts.results_dir / "logs"
    run = [i for i in range(1, len(opts.tasks) + 1) if i not in done]
    start_batch(conn, opts.job, opts.tasks, app_dir=app_dir, logs_dir=logs,
                detached=False, run=run, keep=[done[i] for i in sorted(done)])
    each = (PullEach(target, work_dir, opts.pulled_dir, lambda line: say(f"deploy: {line}", out))
            if opts.pull_each and not opts.no_pull else None)
    result = None
    try:
        with report.phase("tasks"), (each or nullcontext()):
            result = attach(conn, opts.job, logs, out=out, tasks=opts.tasks, probe=probe,
                            on_task_end=_unless_done(each, done))
    except BaseException as exc:
        if report.outcome == "ok":
            report.outcome = f"stopped: {type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        if each is not None:
            report.add_pulls(each.pulls)
        if result is not None:
            report.set_batch(result)
        else:
            report.tasks_from_summary(logs)
    if result.failed:
        report.outcome = f"{result.failed} of {len(result.results)} task(s) failed"
    return result


def _replace(stack: Stack, opts: DeployOptions, report: RunReport, instance_id: int, state: str,
             done: dict[int, TaskRecord], lost: int, out: TextIO) -> None:
    """Destroy the lost instance (verified) and, when the job may go on, rent the next one
    through the stack; JobLost when it may not."""
    total = len(opts.tasks)
    at = min((i for i in range(1, total + 1) if i not in done), default=total)
    what = "outbid" if "outbid" in state else "lost"
    say(f"deploy: instance {instance_id} was {what} at task {at} of {total}: vast.ai says "
        f"{state}", out)
    client = client_for(stack)
    try:
        with report.phase("destroy"):
            destroy_all(client, [instance_id], lambda line: say(f"deploy: {line}", out))
    finally:
        client.close()
    report.retire(f"{what} at task {at} of {total}: {state}")
    policy = opts.on_lost or ("resume" if stack_settings(stack).bid_price is not None
                              else "stop")
    finished = sorted(done)
    if policy == "stop" or lost > opts.max_lost:
        why = ("--on-lost stop" + ("" if opts.on_lost else " (the default for an on-demand "
                                   "stack; --on-lost resume rents a new one)")
               if policy == "stop" else f"it lost {lost} instances (--max-lost {opts.max_lost})")
        report.outcome = f"{what} at task {at} of {total}; stopped: {why}"
        raise JobLost(opts.job, instance_id, state, at, total, finished, why,
                      str(opts.pulled_dir))
    report.outcome = "ok"
    left = total - len(finished)
    say(f"deploy: renting instance {lost + 1} of the job through stack {stack.name} (pulumi up "
        f"--refresh); then sync and the {left} task(s) that did not end with exit 0", out)
    with report.phase("up"):
        stack.up(refresh=True)


def _pull(conn: Connection, work_dir: str, opts: DeployOptions, report: RunReport,
          out: TextIO) -> None:
    """Bring workDir home; when it breaks off, say what is lost (teardown goes ahead)."""
    try:
        with report.phase("pull"):
            got = pull(conn, work_dir, local_dir=opts.pulled_dir)
        report.bytes_received += got.nbytes
        say(f"deploy: pull: {got.describe()}", out)
    except RemoteError as exc:
        got = sum(1 for p in opts.pulled_dir.rglob("*")
                  if p.is_file() and p.name != pullrecord.RECORD_NAME)
        fate = ("the instance is kept: `inv pull --stack "
                f"{opts.stack_name}` fetches the rest" if opts.keeps else
                "the instance is destroyed next, so the files of workDir not fetched yet are "
                "lost (--keep keeps the instance for another pull)")
        report.outcome = f"pull failed: {exc}".splitlines()[0]
        say(f"deploy: pull of {work_dir} broke off: {exc}", out)
        say(f"deploy: {got} file(s) fetched into {opts.pulled_dir}; {fate}", out)
        raise


def _unless_done(each: PullEach | None, done: dict[int, TaskRecord]
                 ) -> Callable[[TaskRecord], None] | None:
    """A pull after each task this instance ran (the kept ones' results are home already)."""
    if each is None:
        return None
    return lambda rec: None if rec.index in done else each.task_ended(rec)
