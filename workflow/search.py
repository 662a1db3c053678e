"""`inv search`: the offers a stack's query would rent from, as a table a person chooses by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from providers.api import VastClient
from providers.cost import Estimate
from providers.query import build_search

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
    ("geolocation", "where", "{}"),
)


def search(
    client: VastClient, query: str, order: str, *, disk_gb: float, limit: int,
    max_price: float | None = None,
) -> list[dict[str, Any]]:
    body = build_search(query, order, disk_gb=disk_gb, limit=limit, max_price=max_price)
    return client.search_offers(body)[:limit]


def offer_table(
    offers: Sequence[dict[str, Any]], estimates: Sequence[Estimate] | None = None
) -> str:
    """Aligned text columns; $/h includes storage for the disk asked for (as vast prices it).
    With estimates (one per offer), their totals make a column before `where`."""
    header = [c[1] for c in COLUMNS]
    rows = [[_cell(offer, col) for col in COLUMNS] for offer in offers]
    if estimates:
        at = header.index("where")
        header.insert(at, f"est $ {estimates[0].hours:g}h")
        for row, est in zip(rows, estimates, strict=True):
            row.insert(at, f"{est.total:.3f}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cell(offer: dict[str, Any], col: tuple[Any, ...]) -> str:
    value = offer.get(col[0])
    if value is None:
        return "-"
    if len(col) > 3:
        value = value * col[3]
    try:
        return col[2].format(value)
    except (ValueError, TypeError):
        return str(value)
