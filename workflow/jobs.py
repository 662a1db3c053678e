"""Job names: one per run, checked, and remembered per stack so `inv pull` continues it.

A job name is a folder under work_remote/ (and part of deploy's stack name), so it must be one
path segment of safe characters: `--job ../../x` or `--job /abs` would make a pull write
outside work_remote/. `inv run` and `inv deploy` record the job they used in
`.vast-gpu/<stack>/latest-job`; `inv pull` without --job takes it, so logs and results land in
the same folder. A deploy that kept its instance also marks its stack (`kept-by-deploy`), so the
`inv down` that ends it later removes the stack too, as the deploy would have.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from workflow.errors import OptionError
from workflow.paths import STATE_DIR

JOB_PREFIX = "vast-gpu-"
JOB_TIME_FORMAT = "%Y%m%d_%H%M%S"
JOB_MAX_CHARS = 80
_JOB = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LATEST_JOB = "latest-job"
KEPT_BY_DEPLOY = "kept-by-deploy"


def default_job() -> str:
    return JOB_PREFIX + time.strftime(JOB_TIME_FORMAT)


def check_job(name: str) -> str:
    """The name itself, or OptionError: letters, digits, `.`, `_`, `-`; one segment."""
    if not _JOB.fullmatch(name) or len(name) > JOB_MAX_CHARS:
        raise OptionError(
            "--job", name,
            f"a job name is one folder name under work_remote/: letters, digits, '.', '_' and "
            f"'-', starting with a letter or digit, at most {JOB_MAX_CHARS} characters "
            f"(e.g. {default_job()})",
        )
    return name


def _stack_dir(stack: str) -> Path:
    return STATE_DIR / stack.replace("/", "%2F")


def _latest_file(stack: str) -> Path:
    return _stack_dir(stack) / LATEST_JOB


def remember_job(stack: str, job: str, *, kept_by_deploy: bool = False) -> None:
    path = _latest_file(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(job + "\n")
    if kept_by_deploy:
        (path.parent / KEPT_BY_DEPLOY).write_text(job + "\n")


def kept_by_deploy(stack: str) -> bool:
    return (_stack_dir(stack) / KEPT_BY_DEPLOY).is_file()


def forget_stack(stack: str) -> None:
    """Drop what we remembered of a stack that is removed."""
    shutil.rmtree(_stack_dir(stack), ignore_errors=True)


def latest_job(stack: str) -> str | None:
    """The job `inv run`/`inv deploy` last used on the stack; None if none (or unusable)."""
    try:
        name = _latest_file(stack).read_text().strip()
    except OSError:
        return None
    try:
        return check_job(name)
    except OptionError:
        return None


def job_for_run(stack: str, job: str | None) -> str:
    """The job a run uses (the one given, else a new name), remembered for `inv pull`."""
    name = check_job(job) if job else default_job()
    remember_job(stack, name)
    return name


def job_for_pull(stack: str, job: str | None) -> tuple[str, str]:
    """(job, where it came from): the one given, else the stack's latest, else a new name."""
    if job:
        return check_job(job), "--job"
    latest = latest_job(stack)
    if latest:
        return latest, "the stack's latest job"
    name = default_job()
    remember_job(stack, name)
    return name, "a new job name: no run on this stack yet"
