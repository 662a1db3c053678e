"""Instances that carry our label but that no stack knows: find them, and destroy on request.

Every instance the provider rents is labelled `[vast-gpu:<project>/<stack>/<resource>]`
(providers/labels.py), so a create that was killed, a deploy whose teardown was cut short,
or a stack deleted by hand without destroy cannot hide a billing machine from `inv sweep`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from providers.api import VastClient
from providers.labels import parse_tag
from providers.lifecycle import Lifecycle


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


def leftovers(rows: Iterable[dict[str, Any]], known_ids: set[int]) -> list[Tagged]:
    """Our instances whose id is in no stack's state."""
    return [t for t in tagged_instances(rows) if t.instance_id not in known_ids]


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
