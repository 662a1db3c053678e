"""The billing ledger: what each instance has cost so far, by the second.

vast.ai's rules (vast-api.md section 9): the GPU part (``dph_base`` $/hour, or the bid for an
interruptible instance) is charged only while the container is ``running``; storage
(``disk * storage_cost / 720`` $/hour) is charged while the instance exists and its host is
online, stopped included, and never after destroy. Bandwidth is not modelled.

Each ``Meter`` keeps closed seconds plus the start of the open interval, so the amount is exact
at any moment and survives a restart in the state file. Time while vastsim itself is down is not
billed: shutdown closes every interval and the restart opens them again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SECONDS_PER_HOUR = 3600.0


@dataclass
class Meter:
    """Accrued seconds of one instance, GPU and storage apart."""

    gpu_rate_h: float
    storage_rate_h: float
    gpu_s: float = 0.0
    storage_s: float = 0.0
    gpu_since: float | None = None
    storage_since: float | None = None
    gpu_usd_prior: float = 0.0  # GPU dollars at earlier rates (a changed bid)
    gpu_s_priced: float = 0.0  # GPU seconds those dollars cover

    def reprice(self, now: float, gpu_rate_h: float) -> None:
        """A new GPU rate from ``now`` on; the seconds before keep the old one."""
        gpu_s, _ = self.seconds(now)
        self.gpu_usd_prior += (gpu_s - self.gpu_s_priced) * self.gpu_rate_h / SECONDS_PER_HOUR
        self.gpu_s_priced = gpu_s
        self.gpu_rate_h = gpu_rate_h

    def set(self, now: float, *, gpu: bool, storage: bool) -> None:
        """Make GPU and storage billing on or off from ``now`` (idempotent)."""
        if gpu and self.gpu_since is None:
            self.gpu_since = now
        elif not gpu and self.gpu_since is not None:
            self.gpu_s += max(0.0, now - self.gpu_since)
            self.gpu_since = None
        if storage and self.storage_since is None:
            self.storage_since = now
        elif not storage and self.storage_since is not None:
            self.storage_s += max(0.0, now - self.storage_since)
            self.storage_since = None

    def seconds(self, now: float) -> tuple[float, float]:
        """(GPU seconds, storage seconds) accrued up to ``now``."""
        gpu = self.gpu_s + (max(0.0, now - self.gpu_since) if self.gpu_since is not None else 0)
        storage = self.storage_s + (max(0.0, now - self.storage_since)
                                    if self.storage_since is not None else 0)
        return gpu, storage

    @property
    def accruing(self) -> bool:
        return self.gpu_since is not None or self.storage_since is not None

    def report(self, now: float) -> dict[str, Any]:
        gpu_s, storage_s = self.seconds(now)
        gpu_usd = self.gpu_usd_prior + ((gpu_s - self.gpu_s_priced) * self.gpu_rate_h
                                        / SECONDS_PER_HOUR)
        storage_usd = storage_s * self.storage_rate_h / SECONDS_PER_HOUR
        return {"gpu_seconds": gpu_s, "storage_seconds": storage_s,
                "gpu_rate_per_hour": self.gpu_rate_h, "storage_rate_per_hour": self.storage_rate_h,
                "gpu_dollars": gpu_usd, "storage_dollars": storage_usd,
                "dollars": gpu_usd + storage_usd,
                "billing_gpu": self.gpu_since is not None,
                "billing_storage": self.storage_since is not None}

    def to_state(self) -> dict[str, Any]:
        return asdict(self)
