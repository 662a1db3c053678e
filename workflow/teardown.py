"""deploy's teardown, which nothing may stop: not a signal, not a print, not a failed call.

While a job runs, SIGTERM and SIGHUP (a closed terminal) become the same KeyboardInterrupt as
Ctrl-C, so every way of stopping `inv deploy` takes the `finally` that tears down. SIGPIPE
stays ignored (Python's default): a closed output pipe surfaces as a failed write, which
workflow.console drops. During teardown SIGINT, SIGTERM and SIGHUP are noted and ignored; one
that lands before the handlers are swapped only restarts the teardown, whose every step is
idempotent. Each step runs even when the one before failed: `pulumi destroy`, then a DELETE of
every instance deploy knew of and of any carrying this stack's label (a create cut short is in
no state), and only when none is left is the stack removed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from providers.errors import VastError
from providers.labels import parse_tag
from workflow.console import say
from workflow.errors import OutputsError, PulumiError, TeardownError
from workflow.jobs import forget_stack, kept_by_deploy
from workflow.outputs import named_ids
from workflow.pulumi import PROJECT, Stack
from workflow.sweep import destroy_all, of_stack
from workflow.vast import client_for

INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DONE_LINE = "deploy: nothing of this job bills any more"


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, like Ctrl-C, for the block."""
    def handler(signo: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signo).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextmanager
def signals_ignored(out: TextIO) -> Iterator[None]:
    def note(signo: int, _frame: FrameType | None) -> None:
        say(f"deploy: {signal.Signals(signo).name} ignored: teardown must finish "
            f"(pid {os.getpid()})", out)

    previous = {s: signal.signal(s, note) for s in INTERRUPTS}
    previous[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def unstoppable(step: Callable[[], None], out: TextIO) -> None:
    """Run `step` (idempotent) with interrupts ignored; one that arrived before they were
    ignored (a KeyboardInterrupt out of the `with` itself) runs it again."""
    while True:
        try:
            with signals_ignored(out):
                step()
            return
        except KeyboardInterrupt:
            say("deploy: interrupted before teardown could start; starting it again", out)


def teardown(stack: Stack, known_ids: Iterable[int], out: TextIO) -> None:
    """Destroy everything of the job's stack (see the module docstring), then remove it;
    TeardownError when something may still bill."""
    say(f"deploy: tearing down stack {stack.name!r} (Ctrl-C is ignored until it is done)", out)
    known = set(known_ids)
    problems: list[str] = []
    try:
        exists = stack.exists()
    except PulumiError as exc:
        problems.append(f"pulumi stack ls exited {exc.exit_code}")
        exists = True
    if not exists and not known:
        say(DONE_LINE + " (no stack was created)", out)
        return
    if exists and not problems:
        try:
            stack.destroy()
        except PulumiError as exc:
            problems.append(f"pulumi destroy exited {exc.exit_code}")
            say("deploy: pulumi destroy failed; deleting the job's instances through the API",
                out)
    left = _delete_by_api(stack, known, out, problems)
    if left:
        raise TeardownError(stack.name, left, "; ".join(problems))
    if exists:
        try:
            stack.remove(force=bool(problems))
        except PulumiError as exc:
            say(f"deploy: warning: stack {stack.name!r} not removed (exit {exc.exit_code}): "
                f"`pulumi stack rm {stack.name} --force` removes it; nothing of it bills", out)
    say(DONE_LINE, out)


def _delete_by_api(stack: Stack, known: set[int], out: TextIO, problems: list[str]) -> list[int]:
    """DELETE (verified) the known ids still listed and whatever carries the stack's label;
    the ids that may still exist. A failed list call still leaves the known ids to delete."""
    def progress(line: str) -> None:
        say(f"deploy: {line}", out)

    try:
        client = client_for(stack)
    except VastError as exc:
        problems.append(f"no API client: {exc}")
        return sorted(known)
    left = []
    try:
        try:
            labelled = {t.instance_id for t in of_stack(client.list_instances(), PROJECT,
                                                        stack.name)}
        except VastError as exc:
            problems.append(f"listing instances failed: {exc}")
            labelled = set()
        for instance_id in sorted(known | labelled):
            try:
                if instance_id not in labelled and _gone(client.show_instance(instance_id)):
                    continue  # pulumi destroy took it
                destroy_all(client, [instance_id], progress)
            except VastError as exc:
                problems.append(f"instance {instance_id}: {exc}")
                left.append(instance_id)
    finally:
        client.close()
    return left


def _gone(record: dict | None) -> bool:
    return record is None or record.get("intended_status") == "destroyed"


def finish_kept(stack: Stack, out: TextIO | None = None) -> None:
    """After `inv down` of a stack a deploy kept: once it holds no instance, remove it, as the
    deploy's own teardown would have (the user's own stacks are never removed)."""
    if not kept_by_deploy(stack.name):
        return
    if any(r["type"].endswith("vast:Instance") for r in stack.deployment().get("resources") or []):
        return
    stack.remove(force=True)  # only the stack's own root resource is left in its state
    forget_stack(stack.name)
    say(f"removed stack {stack.name!r}: a deploy kept it, and nothing of it bills any more", out)


def destroy_one(stack: Stack, instance_id: int, out: TextIO | None = None) -> None:
    """`inv down --instance`: DELETE (verified) one instance of the stack, then refresh it.

    The instance is the stack's when its outputs name it, or, after an `up` that was killed
    before it wrote any output, when its live label carries this stack's tag; any other id is
    refused, so a typo cannot destroy a teammate's machine.
    """
    named = named_ids(stack.outputs())
    client = client_for(stack)
    try:
        if instance_id not in named:
            record = client.show_instance(instance_id)
            tag = parse_tag(record.get("label") if record else None)
            if record is None or tag is None or (tag.project, tag.stack) != (PROJECT, stack.name):
                ids = ", ".join(str(i) for i in sorted(named)) or "none"
                whose = ("it is gone" if record is None else
                         "its label carries no vast-gpu tag" if tag is None else
                         f"its label says stack {tag.stack!r} of project {tag.project!r}")
                raise OutputsError(stack.name, f"has no instance {instance_id} ({whose}; the "
                                               f"stack's outputs name {ids})")
        destroy_all(client, [instance_id], lambda line: say(line, out))
    finally:
        client.close()
    stack.stream("refresh", "--yes")
