"""Which offers a stack would rent, best first: the one selector behind create, `inv search`
and `deploy --dry-run`, so what they show is what a rent does.

query + order (on the server), then here: the price cap (the server's filter is best effort),
machines to avoid, the bid against each offer's ``min_bid`` (vast.ai leaves a bid under it in
``scheduling``, billing storage, so such offers are never rented), and ``maxCost`` against each
offer's estimate. Every filter that removes offers says how many, so an empty result explains
itself; when nothing is left the error says which filter emptied it and what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from providers.cost import Estimate, estimate, over_cap_message
from providers.errors import BidTooLowError, CostCapError, NoOfferError
from providers.query import build_search
from providers.settings import Settings

MAX_COST_HINT = (
    "Raise it (`pulumi config set vast-gpu:maxCost <dollars>`, or unset it), or expect less: "
    "vast-gpu:expectedHours, expectedSyncGB, expectedPullGB, disk, or a cheaper query."
)


@dataclass(frozen=True)
class Candidate:
    """One offer a rent may take, with what it is expected to cost."""

    offer: Mapping[str, Any]
    estimate: Estimate

    @property
    def offer_id(self) -> int:
        return int(self.offer["id"])

    @property
    def machine_id(self) -> Any:
        return self.offer.get("machine_id")


@dataclass(frozen=True)
class Selection:
    """The ranked candidates, and one line per filter that removed offers."""

    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)
    matched: int = 0
    """Offers the search itself returned."""


Search = Callable[[Mapping[str, Any]], list[dict[str, Any]]]


def search_body(settings: Settings) -> dict[str, Any]:
    return build_search(settings.query, settings.order, disk_gb=settings.disk_gb,
                        offer_type=settings.offer_type, max_price=settings.max_price)


def select(
    search: Search, settings: Settings, *, avoid: Mapping[Any, str] | None = None,
    sync_gb: float | None = None,
) -> Selection:
    """The offers a rent with ``settings`` would try, in order; raises a SelectionError
    (nothing rented) when none is left. ``avoid``: machine id -> why (failed us before);
    ``sync_gb`` overrides expectedSyncGB (deploy knows the real size)."""
    offers = search(search_body(settings))
    matched = len(offers)
    notes: list[str] = []
    asked = settings.query
    if not offers:
        raise NoOfferError(asked)
    if settings.max_price is not None:
        kept = [o for o in offers if _price(o, "dph_total") <= settings.max_price]
        asked += f" at most ${settings.max_price:.3f}/h"
        _note(notes, len(offers) - len(kept), f"above maxPricePerHour ${settings.max_price:.3f}/h")
        offers = kept
        if not offers:
            raise NoOfferError(asked, detail=f"{matched} matched before the price cap")
    if avoid:
        kept = [o for o in offers if o.get("machine_id") not in avoid]
        skipped = len(offers) - len(kept)
        _note(notes, skipped, "on machines that failed before (`inv hosts` lists them)")
        offers = kept
        if not offers:
            raise NoOfferError(asked, detail=f"all {skipped} left are on machines that failed "
                                             "before; `inv hosts --forget` clears that")
    if settings.bid_price is not None:
        bid = settings.bid_price
        kept = [o for o in offers if _price(o, "min_bid") <= bid]
        refused = [o for o in offers if _price(o, "min_bid") > bid]
        if refused:
            lowest = min(_price(o, "min_bid") for o in refused)
            _note(notes, len(refused), f"with min_bid above the bid ${bid:.4f}/h "
                                       f"(lowest ${lowest:.4f}/h)")
            if not kept:
                raise BidTooLowError(asked, bid=bid, lowest_min_bid=lowest, offers=len(refused))
        offers = kept
    hours = settings.expected_hours
    upload = settings.expected_sync_gb if sync_gb is None else sync_gb
    candidates = [
        Candidate(o, estimate(o, disk_gb=settings.disk_gb, hours=hours, sync_gb=upload,
                              pull_gb=settings.expected_pull_gb, bid_price=settings.bid_price))
        for o in offers
    ]
    if settings.max_cost is not None:
        cap = settings.max_cost
        kept_c = [c for c in candidates if c.estimate.total <= cap]
        refused_c = [c for c in candidates if c.estimate.total > cap]
        _note(notes, len(refused_c), f"with an estimate above maxCost ${cap:.4f}")
        if not kept_c:
            cheapest = min(refused_c, key=lambda c: c.estimate.total).estimate
            raise CostCapError(over_cap_message(cheapest, cap, MAX_COST_HINT), query=asked,
                               estimate_total=cheapest.total, max_cost=cap)
        candidates = kept_c
    return Selection(candidates, notes, matched)


def describe_offer(offer: Mapping[str, Any], bid: float | None = None) -> str:
    """One line: the offer, its GPUs and what the GPU part bills (the bid, for a bid)."""
    country = (offer.get("geolocation") or "??").rsplit(",", 1)[-1].strip()
    if bid is not None:
        price = f"bid ${bid:.3f}/h (min_bid ${_price(offer, 'min_bid'):.3f})"
    else:
        price = f"${_price(offer, 'dph_total'):.3f}/h"
    return (f"offer {offer.get('id')}: {offer.get('num_gpus')}x {offer.get('gpu_name')}, "
            f"{price}, {country}")


def _price(offer: Mapping[str, Any], key: str) -> float:
    value = offer.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _note(notes: list[str], count: int, why: str) -> None:
    if count:
        notes.append(f"{count} offer(s) skipped {why}")


__all__ = ["Candidate", "Selection", "describe_offer", "search_body", "select"]

