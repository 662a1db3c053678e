"""`inv run`: a batch on a stack's running instance, its logs and report under the job's folder.

The batch runs under the instance's supervisor (remote/supervisor.py) and this side follows it
attached (workflow/attach.py): live prefixed output, the summary, exit 1 when a task failed,
Ctrl-C stops the remote tasks; a dropped connection is retried and the stream resumes where
it stopped. The job name is remembered for the stack (workflow/jobs.py), so `inv pull` without
--job brings the results next to these logs, and `inv attach` finds the batch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from remote.batch import BatchResult, Task
from workflow.attach import start_job
from workflow.pulumi import Stack


def run_job(stack: Stack, tasks: Sequence[Task], *, job: str | None, instance: int | None,
            ssh_key: str | None, out: TextIO = sys.stdout) -> BatchResult:
    """Run the batch on the stack's instance, attached; TasksFailed when any task failed."""
    result = start_job(stack, tasks, job=job, instance=instance, ssh_key=ssh_key, detach=False,
                       resume=False, out=out)
    assert result is not None  # attached: start_job followed it to the end
    return result
