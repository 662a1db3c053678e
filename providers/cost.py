"""What a rent will cost, and what one has cost so far: vast.ai's billing rules as arithmetic. Pure.

The rules (docs/vast-api.md, "Billing"): the GPU part (`dph_base` $/h, or the bid of an
interruptible instance) bills per second while the instance runs; storage (`storage_cost`
$/GB/month of 720 hours, times the disk) bills per second while it exists; bandwidth bills
per GB moved, in any state, and is not in `dph_total`. `inet_down_cost` prices what the
machine downloads (our sync
to it), `inet_up_cost` what it uploads (our pull from it).

The API reports no per-instance charges, so every figure here is an estimate, and callers that
show dollars say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

HOURS_PER_MONTH = 720.0  # vast.ai's storage month: 30 days x 24 h
SECONDS_PER_HOUR = 3600.0
BYTES_PER_GB = 1024**3  # vast's $/TB is its $/GB x 1024 (docs/vast-api.md, "Billing"): binary units



@dataclass(frozen=True)
class Rates:
    """One offer's or instance's prices, in the units we compute with."""

    gpu_per_hour: float
    storage_per_hour: float
    inet_down_per_gb: float
    """Data the machine downloads: our sync."""
    inet_up_per_gb: float
    """Data the machine uploads: our pull."""

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """The cost of renting one offer for `hours` and moving `sync_gb` to it, `pull_gb` back."""

    offer_id: Any
    gpu_per_hour: float
    storage_per_hour: float
    hours: float
    sync_gb: float
    pull_gb: float
    gpu: float
    storage: float
    bandwidth_sync: float
    bandwidth_pull: float

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_sync + self.bandwidth_pull

    @property
    def total(self) -> float:
        return self.gpu + self.storage + self.bandwidth

    def describe(self) -> str:
        """One line for progress output and tables."""
        return (
            f"estimate for offer {self.offer_id}: GPU ${self.gpu_per_hour:.4f}/h "
            f"(${self.gpu:.4f} over {self.hours:g} h), storage ${self.storage:.4f} over "
            f"{self.hours:g} h, bandwidth ${self.bandwidth:.4f} ({self.sync_gb:.3g} GB up, "
            f"{self.pull_gb:.3g} GB down), total ${self.total:.4f}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bandwidth": self.bandwidth, "total": self.total}


def _num(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def rates(
    record: Mapping[str, Any], *, disk_gb: float | None = None, bid_price: float | None = None
) -> Rates:
    """The prices of an offer (disk_gb: what we will allocate) or of an instance (its own
    `disk_space`). A bid replaces `dph_base`: an interruptible instance bills the bid."""
    gpu = bid_price if bid_price is not None else _num(record, "dph_base")
    if gpu is None:  # not in every answer: dph_total minus its storage part
        gpu = (_num(record, "dph_total") or 0.0) - (_num(record, "storage_total_cost") or 0.0)
    disk = disk_gb if disk_gb is not None else _num(record, "disk_space")
    storage_cost = _num(record, "storage_cost")
    if disk is not None and storage_cost is not None:
        storage = disk * storage_cost / HOURS_PER_MONTH
    else:
        storage = _num(record, "storage_total_cost") or 0.0
    return Rates(
        gpu_per_hour=max(gpu, 0.0), storage_per_hour=storage,
        inet_down_per_gb=_num(record, "inet_down_cost") or 0.0,
        inet_up_per_gb=_num(record, "inet_up_cost") or 0.0,
    )


def estimate(
    offer: Mapping[str, Any], *, disk_gb: float, hours: float, sync_gb: float, pull_gb: float,
    bid_price: float | None = None,
) -> Estimate:
    """What renting `offer` costs for `hours` (GPU and storage) plus the transfers."""
    r = rates(offer, disk_gb=disk_gb, bid_price=bid_price)
    return Estimate(
        offer_id=offer.get("id"), gpu_per_hour=r.gpu_per_hour,
        storage_per_hour=r.storage_per_hour, hours=hours, sync_gb=sync_gb, pull_gb=pull_gb,
        gpu=r.gpu_per_hour * hours, storage=r.storage_per_hour * hours,
        bandwidth_sync=sync_gb * r.inet_down_per_gb, bandwidth_pull=pull_gb * r.inet_up_per_gb,
    )


def over_cap_message(est: Estimate, max_cost: float, how: str) -> str:
    """Says the estimate, the cap, and how to change either (`how`: the words for the caller's
    settings, e.g. the stack keys or the task's flags)."""
    return (
        f"every matching offer's estimate exceeds maxCost ${max_cost:.4f}; the cheapest, "
        f"offer {est.offer_id}, is ${est.total:.4f} (GPU ${est.gpu:.4f} + storage "
        f"${est.storage:.4f} over {est.hours:g} h + bandwidth ${est.bandwidth:.4f}). "
        f"Nothing was rented. {how}"
    )


def gb(nbytes: int | float) -> float:
    return float(nbytes) / BYTES_PER_GB


def cost_so_far(record: Mapping[str, Any], now: float) -> float | None:
    """An instance's dollars from its start_date to `now` (epoch s), at its GPU and storage
    rates: an upper bound, since the GPU part does not bill while loading or stopped. None
    when the record has no start date."""
    start = _num(record, "start_date")
    if start is None:
        return None
    r = rates(record)
    hours = max(0.0, now - start) / SECONDS_PER_HOUR
    return hours * (r.gpu_per_hour + r.storage_per_hour)


def run_cost(
    r: Rates, *, gpu_seconds: float, storage_seconds: float, sync_bytes: int, pull_bytes: int
) -> dict[str, Any]:
    """A finished run's dollars from measured times and bytes, marked as an estimate: the API
    gives no per-instance charges (docs/vast-api.md, "Billing")."""
    gpu = r.gpu_per_hour * gpu_seconds / SECONDS_PER_HOUR
    storage = r.storage_per_hour * storage_seconds / SECONDS_PER_HOUR
    bandwidth = gb(sync_bytes) * r.inet_down_per_gb + gb(pull_bytes) * r.inet_up_per_gb
    return {
        "estimated": True,
        "basis": "instance prices x measured seconds and bytes; vast.ai reports no charges "
                 "per instance",
        "gpu_seconds": round(gpu_seconds, 3), "storage_seconds": round(storage_seconds, 3),
        "gpu": gpu, "storage": storage, "bandwidth": bandwidth,
        "total": gpu + storage + bandwidth, "rates": r.to_json(),
    }
