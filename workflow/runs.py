"""`inv run`: a batch on a stack's running instance, its logs and report under the job's folder.

The job name is remembered for the stack (workflow/jobs.py), so `inv pull` without --job brings
the results next to these logs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from remote.batch import BatchResult, Task
from workflow.connect import connect
from workflow.console import say
from workflow.errors import TasksFailed
from workflow.jobs import job_for_run
from workflow.outputs import parse_outputs
from workflow.paths import WORK_REMOTE
from workflow.pulumi import Stack
from workflow.report import RunReport


def run_job(stack: Stack, tasks: Sequence[Task], *, job: str | None, instance: int | None,
            ssh_key: str | None, out: TextIO = sys.stdout) -> BatchResult:
    """Run the batch on the stack's instance; TasksFailed when any task failed."""
    raw = stack.outputs()
    outputs = parse_outputs(stack.name, raw)
    inst = outputs.pick(instance)
    job = job_for_run(stack.name, job)
    logs = WORK_REMOTE / job / "logs"
    say(f"run: job {job}: logs in {logs}", out)
    report = RunReport("run", job, stack.name)
    report.set_instance(raw, inst.instance_id)
    try:
        with connect(stack, outputs, inst, ssh_key=ssh_key) as conn:
            result = report.run_tasks(conn, tasks, app_dir=outputs.app_dir, logs_dir=logs,
                                      out=out)
    except BaseException as exc:
        if report.outcome == "ok":
            report.outcome = f"stopped: {type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        report.save_and_print(WORK_REMOTE / job, out, "run: ")
    if result.failed:
        raise TasksFailed(result.failed, len(result.results), logs)
    return result
