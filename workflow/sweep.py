"""The account's instances against the stacks: which stack holds each, and the leftovers that
carry our label but that no stack knows (found, and destroyed on request).

Every instance the provider rents is labelled `[vast-gpu:<project>/<stack>/<resource>]`
(providers/labels.py), so a create that was killed, a deploy whose teardown was cut short,
or a stack deleted by hand without destroy cannot hide a billing machine from `inv sweep`.

What is known comes from every stack in the backend (workflow/stacks.py): on a shared backend that
is the whole team's, so a teammate's instance is known, not a leftover. One that is being
created right now (a `pulumi up` in flight, perhaps a teammate's) has no id in state yet, only a
pending create of its resource: sweep lists it apart and leaves it alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from providers.api import VastClient
from providers.cost import cost_so_far
from providers.labels import parse_tag
from providers.lifecycle import Lifecycle
from workflow.stacks import StackScan


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


def leftovers(rows: Iterable[dict[str, Any]], scan: StackScan) -> list[Tagged]:
    """Our instances whose id is in no stack's state, and whose create is not in flight."""
    return [t for t in tagged_instances(rows)
            if t.instance_id not in scan.holders
            and not scan.is_creating(t.project, t.stack, t.resource)]


def in_flight(rows: Iterable[dict[str, Any]], scan: StackScan) -> list[Tagged]:
    """Our instances that a stack is creating right now (or that a killed create left)."""
    return [t for t in tagged_instances(rows)
            if t.instance_id not in scan.holders
            and scan.is_creating(t.project, t.stack, t.resource)]


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


def sweep_account(client: VastClient, scan: StackScan, *, destroy: bool,
                  out: Callable[[str], None]) -> list[int]:
    """`inv sweep`: say what is in flight (left alone) and each leftover with its cost so far;
    destroy the leftovers when asked. The ids destroyed."""
    rows = client.list_instances()
    for t in in_flight(rows, scan):
        out(f"instance {t.instance_id}: being created in stack {t.stack!r} (a `pulumi up` "
            f"now, or a killed one); not swept: if nobody runs it, `inv down --stack "
            f"{t.stack} --instance {t.instance_id}` destroys it")
    found = leftovers(rows, scan)
    records = {int(r["id"]): r for r in rows}
    now = time.time()
    for t in found:
        spent = cost_so_far(records.get(t.instance_id, {}), now)
        so_far = "cost so far unknown" if spent is None else (
            f"~${spent:.4f} so far (estimated: its rates since start)")
        out(f"instance {t.instance_id}: stack {t.stack!r} resource {t.resource!r}, "
            f"{t.status}, ${t.dph_total or 0:.3f}/h, {so_far}")
    if not found:
        out("no leftover instances")
    elif destroy:
        return destroy_all(client, [t.instance_id for t in found], out)
    else:
        out(f"{len(found)} leftover(s); `inv sweep --yes` destroys them")
    return []


def of_stack(rows: Iterable[dict[str, Any]], project: str, stack: str) -> list[Tagged]:
    return [t for t in tagged_instances(rows) if (t.project, t.stack) == (project, stack)]


def account_lines(rows: Iterable[dict[str, Any]], scan: StackScan, now: float) -> list[str]:
    """One line per instance of the account (the old `vastai show instances`): state, price,
    SSH, cost so far, and the stack that holds it, or what it is if none does."""
    lines = []
    for row in rows:
        iid = int(row["id"])
        tag = parse_tag(row.get("label"))
        if iid in scan.holders:
            whose = f"stack {scan.holders[iid]!r}"
        elif tag:
            whose = f"in no stack (a leftover of {tag.stack!r}: `inv sweep --yes` destroys it)"
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
