"""The account's instances against the stacks: which stack holds each, and the leftovers that
carry our label but that no stack knows (found, and destroyed on request).

Every instance the provider rents is labelled `[vast-gpu:<project>/<stack>/<resource>]`
(providers/lifecycle.py), so a create that was killed, a deploy whose teardown was cut short,
or a stack deleted by hand without destroy cannot hide a billing machine from `inv sweep`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from providers.api import VastClient
from providers.cost import cost_so_far
from providers.lifecycle import LABEL_TAG_PREFIX, Lifecycle

_TAG = re.compile(re.escape(LABEL_TAG_PREFIX) + r"([^/\]\s]+)/([^/\]\s]+)/([^/\]\s]+)\]?$")


@dataclass(frozen=True)
class Tagged:
    instance_id: int
    project: str
    stack: str
    resource: str
    status: str | None
    dph_total: float | None
    start_date: float | None


def parse_tag(label: str | None) -> tuple[str, str, str] | None:
    """(project, stack, resource) of one of our labels, else None."""
    if not label:
        return None
    match = _TAG.search(label.strip())
    return (match.group(1), match.group(2), match.group(3)) if match else None


def tagged_instances(rows: Iterable[dict[str, Any]]) -> list[Tagged]:
    out = []
    for row in rows:
        tag = parse_tag(row.get("label"))
        if tag:
            out.append(Tagged(int(row["id"]), *tag, row.get("actual_status"),
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


def account_lines(rows: Iterable[dict[str, Any]], known: dict[int, str], now: float) -> list[str]:
    """One line per instance of the account (the old `vastai show instances`): state, price,
    SSH, cost so far, and the stack that holds it, or what it is if none does."""
    lines = []
    for row in rows:
        iid = int(row["id"])
        tag = parse_tag(row.get("label"))
        if iid in known:
            whose = f"stack {known[iid]!r}"
        elif tag:
            whose = f"in no stack (a leftover of {tag[1]!r}: `inv sweep --yes` destroys it)"
        else:
            whose = "not rented by vast-gpu"
        spent = cost_so_far(row, now)
        so_far = "" if spent is None else f", ~${spent:.4f} so far"
        ssh = (f", ssh -p {row['ssh_port']} root@{row['ssh_host']}"
               if row.get("ssh_host") and row.get("ssh_port") else "")
        lines.append(f"instance {iid}: {row.get('num_gpus') or '?'}x {row.get('gpu_name')}, "
                     f"{row.get('actual_status')}, ${float(row.get('dph_total') or 0):.3f}/h"
                     f"{so_far}{ssh}; {whose}")
    return lines
