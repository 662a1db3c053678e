"""Reading vast.ai's instance record: where SSH answers, and its state in plain words. Pure.

The record's fields are described in docs/vast-api.md. An interruptible (bid) instance that a
higher bid pushed off its machine shows ``actual_status: stopped``; its storage still bills
and SSH is gone, so every place that shows a state says "outbid (stopped)" for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STARTING_STATES = frozenset({None, "", "created", "scheduling", "loading"})
"""A new instance on its way to running; any other state but running is a failure."""
LOST_STATES = frozenset({"stopped", "exited", "offline", "unknown"})
"""States of a rented instance that will not answer SSH again by themselves."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def ssh_endpoint(record: Mapping[str, Any]) -> Endpoint | None:
    """Prefer the direct 22/tcp mapping on the public IP, else the proxy (docs/vast-api.md)."""
    mapped = (record.get("ports") or {}).get("22/tcp") or []
    public_ip = (record.get("public_ipaddr") or "").strip()
    if mapped and public_ip:
        return Endpoint(public_ip, int(mapped[0]["HostPort"]))
    if record.get("ssh_host") and record.get("ssh_port"):
        return Endpoint(str(record["ssh_host"]).strip(), int(record["ssh_port"]))
    return None


def is_outbid(record: Mapping[str, Any]) -> bool:
    """A bid instance stopped while it was meant to run: a higher bid took its GPUs."""
    return (bool(record.get("is_bid")) and record.get("actual_status") == "stopped"
            and record.get("intended_status", "running") != "stopped")


def describe_state(record: Mapping[str, Any] | None) -> str:
    """The instance's state as a user should read it, with vast.ai's own message."""
    if record is None:
        return "gone"
    status = str(record.get("actual_status") or "unknown")
    msg = " ".join(str(record.get("status_msg") or "").split())
    if is_outbid(record):
        text = "outbid (stopped): a higher bid took the machine; storage still bills"
    elif status == "stopped":
        text = "stopped: storage still bills"
    else:
        text = status
    return f"{text} ({msg})" if msg and status != "running" else text
