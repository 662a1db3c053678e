"""Instances that carry our label but that no stack knows: find them, and destroy on request.

Every instance the provider rents is labelled `[vast-gpu:<project>/<stack>/<resource>]`
(providers/labels.py), so a create that was killed, a deploy whose teardown was cut short,
or a stack deleted by hand without destroy cannot hide a billing machine from `inv sweep`.

What is known comes from every stack in the backend (scan_stacks): on a shared backend that
is the whole team's, so a teammate's instance is known, not a leftover. One that is being
created right now (a `pulumi up` in flight, perhaps a teammate's) has no id in state yet, only a
pending create of its resource: sweep lists it apart and leaves it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from providers.api import VastClient
from providers.labels import parse_tag
from providers.lifecycle import Lifecycle
from workflow.pulumi import Stack

INSTANCE_TYPE = "vast:Instance"


@dataclass(frozen=True)
class Tagged:
    instance_id: int
    project: str
    stack: str
    resource: str
    status: str | None
    dph_total: float | None
    start_date: float | None


def tagged_instances(rows: Iterable[dict[str, Any]]) -> list[Tagged]:
    out = []
    for row in rows:
        tag = parse_tag(row.get("label"))
        if tag:
            out.append(Tagged(int(row["id"]), tag.project, tag.stack, tag.resource,
                              row.get("actual_status"),
                              row.get("dph_total"), row.get("start_date")))
    return out


@dataclass
class StackScan:
    """What the stacks of the backend hold: instance ids, and creates still in flight."""

    known_ids: set[int] = field(default_factory=set)
    creating: set[tuple[str, str, str]] = field(default_factory=set)
    """(project, stack, resource) of each pending create: its instance has no id in state yet."""

    def is_creating(self, t: Tagged) -> bool:
        return (t.project, t.stack, t.resource) in self.creating


def scan_stacks(stacks: Iterable[Stack]) -> StackScan:
    scan = StackScan()
    for stack in stacks:
        deployment = stack.deployment()
        scan.known_ids |= {int(r["id"]) for r in deployment.get("resources") or []
                           if r["type"].endswith(INSTANCE_TYPE) and r.get("id")}
        for op in deployment.get("pending_operations") or []:
            res = op.get("resource") or {}
            if op.get("type") == "creating" and str(res.get("type")).endswith(INSTANCE_TYPE):
                scan.creating.add(urn_names(res["urn"]))
    return scan


def urn_names(urn: str) -> tuple[str, str, str]:
    """(project, stack, resource name) of `urn:pulumi:STACK::PROJECT::TYPE::NAME`."""
    parts = urn.removeprefix("urn:pulumi:").split("::")
    return parts[1], parts[0], parts[-1]


def leftovers(rows: Iterable[dict[str, Any]], scan: StackScan) -> list[Tagged]:
    """Our instances whose id is in no stack's state, and whose create is not in flight."""
    return [t for t in tagged_instances(rows)
            if t.instance_id not in scan.known_ids and not scan.is_creating(t)]


def in_flight(rows: Iterable[dict[str, Any]], scan: StackScan) -> list[Tagged]:
    """Our instances that a stack is creating right now (or that a killed create left)."""
    return [t for t in tagged_instances(rows)
            if t.instance_id not in scan.known_ids and scan.is_creating(t)]


def destroy_all(
    client: VastClient, ids: Iterable[int], progress: Callable[[str], None]
) -> list[int]:
    """Destroy each (verified); the ids destroyed."""
    lifecycle = Lifecycle(client, progress=progress, ssh_probe=lambda _h, _p: "unused")
    done = []
    for instance_id in ids:
        lifecycle.destroy_verified(instance_id)
        done.append(instance_id)
    return done


def of_stack(rows: Iterable[dict[str, Any]], project: str, stack: str) -> list[Tagged]:
    return [t for t in tagged_instances(rows) if (t.project, t.stack) == (project, stack)]
