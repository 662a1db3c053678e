"""Every error the workflow package raises on purpose, in one tree::

    WorkflowError
    ├── PulumiError        a pulumi command failed: .command .exit_code .output_tail
    │   └── StackLocked    another pulumi command holds the stack's lock (pulumi does not
    │                      wait): .stack .locks (workflow.locks.Lock) .stale, and the fix
    ├── StackTaken         a stack deploy means to create exists already (a teammate's?): .stack
    ├── OutputsError       the stack has no usable outputs (not up yet?): .stack .reason
    ├── OptionError        a flag, an ARGS word or a setting that cannot be used, refused
    │                      before anything is rented: .option .value
    ├── InstanceGone       the API says the instance is gone or not running: .stack
    │                      .instance_id .state
    ├── JobLost            a deploy's instance was lost and the job may not go on: .job
    │                      .instance_id .state .at .done
    ├── TeardownError      teardown could not confirm that nothing bills: .stack .instance_ids
    └── TasksFailed        the batch ran, some tasks failed: .failed .total .logs (exit 1)

tasks.py turns any of them (and providers.errors.VastError, remote.errors.RemoteError) into
invoke's Exit with the message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workflow.locks import Lock

TAIL_LINES = 15


class WorkflowError(Exception):
    """Base of everything the workflow package raises on purpose."""


class PulumiError(WorkflowError):
    def __init__(self, command: list[str], exit_code: int, output: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.output_tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:])
        text = f"`{' '.join(command)}` exited {exit_code}"
        if self.output_tail:
            text += f"; last lines:\n{self.output_tail}"
        super().__init__(text)


class StackLocked(PulumiError):
    """Message built by workflow.locks.locked_message: who holds it, since when, what to do."""

    def __init__(self, command: list[str], exit_code: int, output: str, *, stack: str,
                 locks: Sequence[Lock], stale: bool, message: str) -> None:
        super().__init__(command, exit_code, output)
        self.stack = stack
        self.locks = list(locks)
        self.stale = stale
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


class StackTaken(WorkflowError):
    def __init__(self, stack: str, hint: str) -> None:
        self.stack = stack
        super().__init__(f"stack {stack!r} exists already in the backend: {hint}")


class OutputsError(WorkflowError):
    def __init__(self, stack: str, reason: str) -> None:
        self.stack = stack
        self.reason = reason
        super().__init__(f"stack {stack!r}: {reason}")


class OptionError(WorkflowError):
    """A value the user gave that cannot be used; the message says what would do."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"{option} {value!r}: {reason}")


class InstanceGone(WorkflowError):
    """vast.ai no longer lists the instance (state None), or it is not running."""

    def __init__(self, stack: str, instance_id: int, state: str | None, advice: str) -> None:
        self.stack = stack
        self.instance_id = instance_id
        self.state = state
        what = "is gone (vast.ai no longer lists it)" if state is None else f"is {state}"
        super().__init__(f"instance {instance_id} of stack {stack!r} {what}: {advice}")


class JobLost(WorkflowError):
    """The instance of a deploy was lost (outbid, stopped, gone) and the job stops there."""

    def __init__(self, job: str, instance_id: int, state: str, at: int, total: int,
                 done: Sequence[int], why: str, results: str) -> None:
        self.job = job
        self.instance_id = instance_id
        self.state = state
        self.at = at
        self.done = tuple(done)
        ended = ", ".join(map(str, self.done)) or "none"
        super().__init__(f"job {job}: instance {instance_id} was lost at task {at} of {total} "
                         f"({state}) and was destroyed; not going on: {why}. Tasks that ended "
                         f"with exit 0: {ended}; their results are in {results}")


class TeardownError(WorkflowError):
    def __init__(self, stack: str, instance_ids: Sequence[int], reason: str) -> None:
        self.stack = stack
        self.instance_ids = tuple(instance_ids)
        ids = ", ".join(map(str, self.instance_ids)) or "none known"
        super().__init__(
            f"teardown of stack {stack!r} did not finish ({reason}); instance(s) {ids} may "
            f"still bill: run `inv down --stack {stack}`, then `inv sweep --yes`"
        )


class TasksFailed(WorkflowError):
    def __init__(self, failed: int, total: int, logs: Path | None = None) -> None:
        self.failed = failed
        self.total = total
        self.logs = logs
        super().__init__(f"{failed} of {total} task(s) failed"
                         + (f"; logs in {logs}" if logs else ""))
