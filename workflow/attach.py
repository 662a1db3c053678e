"""`inv run` (attached, or --detach, --resume, --pull-each), `inv attach`, and the batches
`inv status` shows.

The batch runs under the instance's supervisor (remote/supervisor.py) and this side follows it
(remote/detached.py): live prefixed output, the summary, exit 1 when a task failed, Ctrl-C
stops the remote tasks; a dropped connection is retried and the stream resumes where it
stopped, unless vast.ai says the instance is gone. This module picks the job, the instance and
the logs folder (`work_remote/<job>/logs`), remembers the job for the stack (so `inv pull`
without --job brings the results next to the logs), says what it does, and records the
attached part in the job's run report.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import TextIO

from remote import supervisor
from remote.batch import BatchResult, Task
from remote.detached import attach
from remote.errors import SshError
from remote.pulleach import PullEach
from remote.ssh import Connection
from remote.supervisor import plan_resume, start_batch
from workflow.connect import connect, lost_probe
from workflow.console import say
from workflow.errors import OptionError, TasksFailed, WorkflowError
from workflow.jobs import job_for_pull, job_for_run, latest_job
from workflow.outputs import StackOutputs, parse_outputs
from workflow.paths import WORK_REMOTE, pulled_dir
from workflow.pulumi import Stack
from workflow.report import RunReport


def start_job(stack: Stack, tasks: Sequence[Task], *, job: str | None, instance: int | None,
              ssh_key: str | None, detach: bool, resume: bool, pull_each: bool = False,
              out: TextIO = sys.stdout) -> BatchResult | None:
    """Start the batch under the supervisor; attached unless `detach` (then None at once).
    `resume` reruns only the tasks of the job's batch that did not end with exit 0;
    `pull_each` pulls workDir home as each task ends (remote/pulleach.py)."""
    if resume:
        job = job or latest_job(stack.name)
        if not job:
            raise OptionError("--resume", True, "give --job NAME: this stack has run no job")
    job = job_for_run(stack.name, job)
    raw = stack.outputs()
    outputs = parse_outputs(stack.name, raw)
    inst = outputs.pick(instance)
    logs = WORK_REMOTE / job / "logs"
    with connect(stack, outputs, inst, ssh_key=ssh_key) as conn:
        run = keep = None
        if resume:
            plan = plan_resume(conn, job, tasks)
            run, keep = plan.run, plan.keep
            skipped = ", ".join(str(r.index) for r in keep) or "none"
            say(f"run: resuming job {job}: skipping task(s) {skipped} (ended with exit 0); "
                f"running {', '.join(map(str, run)) or 'none'}", out)
        pid = start_batch(conn, job, tasks, app_dir=outputs.app_dir, logs_dir=logs,
                          detached=detach, run=run, keep=keep or ())
        if detach:
            say(f"run: job {job} started detached on instance {inst.instance_id} (supervisor "
                f"pid {pid}); it holds the instance alive while it runs, then idleTimeout "
                f"counts. Follow it: `inv attach --stack {stack.name} --job {job}`; see it: "
                f"`inv status --stack {stack.name}`", out)
            return None
        say(f"run: job {job}: logs in {logs}", out)
        each = outputs.work_dir if pull_each else None
        return _attached(stack, raw, inst.instance_id, conn, job, tasks, out, each)


def attach_job(stack: Stack, *, job: str | None, instance: int | None, ssh_key: str | None,
               pull_each: bool = False, out: TextIO = sys.stdout) -> BatchResult:
    """Follow the job's batch (default: the stack's latest job) from where the local logs end."""
    job, why = job_for_pull(stack.name, job)
    raw = stack.outputs()
    outputs = parse_outputs(stack.name, raw)
    inst = outputs.pick(instance)
    say(f"attach: job {job} ({why}); logs in {WORK_REMOTE / job / 'logs'}", out)
    with connect(stack, outputs, inst, ssh_key=ssh_key) as conn:
        each = outputs.work_dir if pull_each else None
        return _attached(stack, raw, inst.instance_id, conn, job, None, out, each)


def _attached(stack: Stack, raw: dict, instance_id: int, conn: Connection, job: str,
              tasks: Sequence[Task] | None, out: TextIO,
              pull_each_from: str | None) -> BatchResult:
    """Follow the batch into the job's logs; with `pull_each_from` (workDir) pull it into the
    job's folder after each task, as `inv pull` would."""
    logs = WORK_REMOTE / job / "logs"
    report = RunReport("run", job, stack.name)
    report.set_instance(raw, instance_id)
    each = (PullEach(conn.target, pull_each_from, pulled_dir(job),
                     lambda line: say(f"run: {line}", out)) if pull_each_from else None)
    result = None
    try:
        with report.phase("tasks"), (each or nullcontext()):
            result = attach(conn, job, logs, out=out, tasks=tasks,
                            probe=lost_probe(stack, instance_id),
                            on_task_end=each.task_ended if each else None)
    except BaseException as exc:
        report.outcome = f"stopped: {type(exc).__name__}: {exc}".splitlines()[0]
        report.tasks_from_summary(logs)
        raise
    finally:
        if each is not None:
            report.add_pulls(each.pulls)
        if result is not None:
            report.set_batch(result)
            if result.failed:
                report.outcome = f"{result.failed} of {len(result.results)} task(s) failed"
        report.save_and_print(WORK_REMOTE / job, out, "run: ")
    if result.failed:
        raise TasksFailed(result.failed, len(result.results), logs)
    return result


def batch_status_lines(stack: Stack, outputs: StackOutputs,
                       ssh_key: str | None = None) -> Iterator[str]:
    """One line per supervised batch on each instance: running/done, task k of n, last line."""
    for inst in outputs.instances:
        try:
            with connect(stack, outputs, inst, ssh_key=ssh_key) as conn:
                states = supervisor.list_batches(conn)
        except (SshError, WorkflowError) as exc:
            yield f"instance {inst.instance_id}: batches unknown ({exc})"
            continue
        for state in states:
            yield f"instance {inst.instance_id}: {state.describe()}"
