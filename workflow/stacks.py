"""What the stacks of the backend hold: which stack has each instance, and the creates still
in flight. One scan reads every stack's state (`pulumi stack export`, which takes no lock); on
a shared backend that is the whole team's stacks (workflow/pulumi.py: list_stacks)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workflow.console import say
from workflow.errors import OutputsError
from workflow.paths import PROJECT_DIR
from workflow.pulumi import Stack, list_stacks, selected_stack

INSTANCE_TYPE = "vast:Instance"


@dataclass
class StackScan:
    """Instance id -> the stack whose state holds it, and the pending creates."""

    holders: dict[int, str] = field(default_factory=dict)
    creating: set[tuple[str, str, str]] = field(default_factory=set)
    """(project, stack, resource) of each pending create: its instance has no id in state yet."""

    @property
    def known_ids(self) -> set[int]:
        return set(self.holders)

    def is_creating(self, project: str, stack: str, resource: str) -> bool:
        return (project, stack, resource) in self.creating


def scan_stacks(stacks: Iterable[Stack]) -> StackScan:
    scan = StackScan()
    for stack in stacks:
        deployment = stack.deployment()
        for r in deployment.get("resources") or []:
            if r["type"].endswith(INSTANCE_TYPE) and r.get("id"):
                scan.holders[int(r["id"])] = stack.name
        for op in deployment.get("pending_operations") or []:
            res = op.get("resource") or {}
            if op.get("type") == "creating" and str(res.get("type")).endswith(INSTANCE_TYPE):
                scan.creating.add(urn_names(res["urn"]))
    return scan


def scan_project(program: Path = PROJECT_DIR) -> StackScan:
    """Every stack of the project in the current backend."""
    return scan_stacks(Stack(name, program) for name in list_stacks(program))


def urn_names(urn: str) -> tuple[str, str, str]:
    """(project, stack, resource name) of `urn:pulumi:STACK::PROJECT::TYPE::NAME`."""
    parts = urn.removeprefix("urn:pulumi:").split("::")
    return parts[1], parts[0], parts[-1]


def stack_for(name: str | None, instance_id: int | None, program: Path = PROJECT_DIR) -> Stack:
    """`name`, else the stack whose state holds `instance_id` (said, for the old habit of
    naming only the instance), else the selected one."""
    if name:
        return Stack(name, program)
    if instance_id is None:
        return Stack(selected_stack(program), program)
    holder = scan_project(program).holders.get(instance_id)
    if holder is None:
        raise OutputsError("(none)", f"instance {instance_id} is in no stack of this project: "
                                     "`inv instances` lists your instances and the stack of each")
    say(f"stack {holder!r} holds instance {instance_id}")
    return Stack(holder, program)
