"""`inv search` and `deploy --dry-run`: what the offer selector (providers/offers.py) would
rent now, as a table a person chooses by. Searching rents nothing and needs no key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers.offers import Candidate, Selection, describe_offer, select
from providers.settings import Settings
from workflow.vast import client_at

COLUMNS = (
    ("id", "offer", "{}"),
    ("num_gpus", "n", "{}"),
    ("gpu_name", "gpu", "{}"),
    ("gpu_ram", "vram GB", "{:.0f}", 1 / 1000),
    ("dph_total", "$/h", "{:.3f}"),
    ("reliability", "reliab", "{:.3f}"),
    ("cuda_max_good", "cuda", "{}"),
    ("inet_down", "down Mb/s", "{:.0f}"),
    ("disk_space", "disk GB", "{:.0f}"),
    ("min_bid", "min bid", "{:.3f}"),
    ("geolocation", "where", "{}"),
)


def selection_for(settings: Settings, *, sync_gb: float | None = None) -> Selection:
    """The selector's answer for these settings, against their API."""
    client = client_at(settings.api_url, key_required=False)
    try:
        return select(client.search_offers, settings, sync_gb=sync_gb)
    finally:
        client.close()


def summary(selection: Selection, settings: Settings) -> tuple[str, str]:
    """(the offer a rent would take, its estimate), in the provider's own words."""
    first = selection.candidates[0]
    cap = f" (maxCost ${settings.max_cost:.4f})" if settings.max_cost is not None else ""
    return (f"would rent {describe_offer(first.offer, settings.bid_price)}",
            first.estimate.describe() + cap)


def offer_table(candidates: Sequence[Candidate]) -> str:
    """Aligned text columns; $/h includes storage for the disk asked for (as vast prices it),
    and the estimate of each over the expected hours comes before `where`."""
    header = [c[1] for c in COLUMNS]
    rows = [[_cell(c.offer, col) for col in COLUMNS] for c in candidates]
    if candidates:
        at = header.index("where")
        header.insert(at, f"est $ {candidates[0].estimate.hours:g}h")
        for row, cand in zip(rows, candidates, strict=True):
            row.insert(at, f"{cand.estimate.total:.3f}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cell(offer: Any, col: tuple[Any, ...]) -> str:
    value = offer.get(col[0])
    if value is None:
        return "-"
    if len(col) > 3:
        value = value * col[3]
    try:
        return col[2].format(value)
    except (ValueError, TypeError):
        return str(value)
