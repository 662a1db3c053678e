"""The offer catalogue: which offers exist, which are free, and how a search query selects them.

Offers come from ``vastsim/data/offers.json`` (real offers, see ``vastsim.offer_sample``). Their
``start_date``/``end_date`` are shifted at load so the contract window lies around *now* the way
it lay around the recording time. An offer is rented at most once; renting it also takes its
``gpu_ids``, hiding every other offer that shares a GPU. When the instance is destroyed the GPUs
come free and the machine comes back under a new offer id, as on the real marketplace.

Query semantics follow vast-api.md section 2 (what the server does with the CLI's JSON).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from vastsim.errors import ApiError

OFFERS_FILE = Path(__file__).with_name("data") / "offers.json"
# The OpenAPI's server default for allocated_storage (the CLI always sends its own 5.0).
DEFAULT_ALLOCATED_STORAGE_GB = 8.0
# A third party reports never seeing more than 64 rows; used only when no limit is sent.
DEFAULT_LIMIT = 64
HOURS_PER_MONTH = 720.0
NEW_OFFER_ID_START = 30_000_000

OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"})
TYPES = {"on-demand": "on-demand", "ondemand": "on-demand", "bid": "bid",
         "interruptible": "bid", "reserved": "reserved"}
NON_FILTER_KEYS = frozenset({"order", "type", "limit", "allocated_storage",
                             "disable_bundling", "select_cols", "extra_ids"})
# Keys the CLI knows that the recorded rows lack, mapped to how vastsim answers them.
DERIVED_FIELDS = frozenset({"verified", "datacenter", "ubuntu_version", "cluster_id"})
IGNORED_FIELDS = frozenset({"rented"})  # per-caller, never filtered by the server (PR #394)
BOOL_FIELDS = frozenset({"verified", "rentable", "external", "datacenter", "static_ip",
                         "gpu_display_active", "vms_enabled", "is_bid"})


def storage_hourly(disk_gb: float, storage_cost: float) -> float:
    """$/hour for ``disk_gb`` of disk: storage_cost is $/GB/month of 720 hours."""
    return disk_gb * storage_cost / HOURS_PER_MONTH


def country_code(geolocation: Any) -> str | None:
    """The trailing two-letter code of ``"Quebec, CA"``; None when there is none."""
    if not isinstance(geolocation, str) or not geolocation.strip():
        return None
    return geolocation.rsplit(",", 1)[-1].strip()


def field_value(offer: dict[str, Any], field: str) -> Any:
    """The value a filter on ``field`` compares against."""
    if field == "verified":
        return offer.get("verification") == "verified"
    if field == "datacenter":
        return offer.get("hosting_type") == 1
    if field == "ubuntu_version":
        return offer.get("os_version")
    if field == "geolocation":
        return country_code(offer.get("geolocation"))
    value = offer.get(field)
    if field in BOOL_FIELDS and value is None:
        return False  # recorded rows carry external: null; the CLI filters external eq false
    return value


def _coerce(want: Any, have: Any, field: str) -> Any:
    """Coerce a query operand to the type of the offer's value (strings arrive for numbers)."""
    if isinstance(have, bool) or field in BOOL_FIELDS:
        if isinstance(want, str) and want.lower() in ("true", "false"):
            return want.lower() == "true"
        return want
    if isinstance(have, int | float) and isinstance(want, str):
        try:
            return float(want)
        except ValueError:
            raise ApiError.vast(400, "invalid_args",
                                f"Error in query parameters: {field}: {want!r} is not a number"
                                ) from None
    return want


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "eq":
        return have == want
    if op == "neq":
        return have != want
    if have is None or want is None:
        return False
    try:
        if op == "gt":
            return have > want
        if op == "gte":
            return have >= want
        if op == "lt":
            return have < want
        return have <= want  # lte
    except TypeError:
        return False


def matches(offer: dict[str, Any], filters: dict[str, dict[str, Any]]) -> bool:
    """True when ``offer`` passes every ``{field: {op: value}}`` filter."""
    for field, ops in filters.items():
        have = field_value(offer, field)
        for op, want in ops.items():
            if op in ("in", "notin"):
                items = want if isinstance(want, list) else [want]
                found = any(have == _coerce(w, have, field) for w in items)
                if found != (op == "in"):
                    return False
            elif not _compare(op, have, _coerce(want, have, field)):
                return False
    return True


def parse_filters(query: dict[str, Any], known: set[str]) -> dict[str, dict[str, Any]]:
    """Validate the query's filters, drop ``"any"``, and add the server's implicit defaults."""
    filters: dict[str, dict[str, Any]] = {}
    for field, ops in query.items():
        if field in NON_FILTER_KEYS:
            continue
        if not isinstance(ops, dict):
            raise ApiError.vast(400, "invalid_args",
                                f"Error in query parameters: {field} must be an object of "
                                f"operators, got {ops!r}")
        bad = set(ops) - OPS
        if bad:
            raise ApiError.vast(400, "invalid_args",
                                f"Error in query parameters: {field}: unknown operator(s) "
                                f"{sorted(bad)}")
        if field not in known and field not in DERIVED_FIELDS and field not in IGNORED_FIELDS:
            raise ApiError.vast(400, "invalid_args",
                                f"Error in query parameters: {field} is not a valid search key")
        kept = {op: v for op, v in ops.items() if v != "any"}
        if field in IGNORED_FIELDS:
            kept = {}
        filters[field] = kept
    for field in ("verified", "rentable"):
        filters.setdefault(field, {"eq": True})
    return filters


def parse_order(order: Any) -> list[tuple[str, bool]]:
    """``[["score", "desc"]]`` -> ``[("score", True)]`` (True = descending)."""
    if order is None:
        return [("score", True)]
    if not isinstance(order, list):
        raise ApiError.vast(400, "invalid_args", f"order must be a list, got {order!r}")
    out = []
    for item in order:
        if not (isinstance(item, list | tuple) and len(item) in (1, 2)):
            raise ApiError.vast(400, "invalid_args", f"bad order item {item!r}")
        direction = item[1] if len(item) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ApiError.vast(400, "invalid_args", f"bad order direction {direction!r}")
        out.append((str(item[0]), direction == "desc"))
    return out


def priced(offer: dict[str, Any], storage_gb: float, kind: str) -> dict[str, Any]:
    """A copy of ``offer`` with the pricing fields recomputed for ``storage_gb`` and ``kind``."""
    row = copy.deepcopy(offer)
    base = offer["min_bid"] if kind == "bid" else offer["dph_base"]
    disk_hour = storage_hourly(storage_gb, offer["storage_cost"])
    total = base + disk_hour
    old_total = offer["dph_total"] or total
    row["storage_total_cost"] = disk_hour
    row["dph_total"] = total
    row["discounted_dph_total"] = total
    if offer.get("dph_total_adj") is not None:
        row["dph_total_adj"] = offer["dph_total_adj"] - old_total + total
    for key, per in (("dlperf_per_dphtotal", "dlperf"), ("flops_per_dphtotal", "total_flops")):
        if offer.get(per) is not None and total > 0:
            row[key] = offer[per] / total
    row["search"] = {"discountTotalHour": 0, "discountedTotalPerHour": total,
                     "diskHour": disk_hour, "gpuCostPerHour": base, "totalHour": total}
    row["instance"] = {"discountTotalHour": 0, "discountedTotalPerHour": disk_hour,
                       "diskHour": disk_hour, "gpuCostPerHour": 0, "totalHour": disk_hour}
    row["is_bid"] = kind == "bid"
    row["rented"] = False
    return row


def sort_rows(rows: list[dict[str, Any]], field: str, desc: bool) -> list[dict[str, Any]]:
    """Stable sort on one field; rows without a comparable value go last either way."""
    def comparable(row: dict[str, Any]) -> bool:
        return isinstance(row.get(field), int | float | str)
    present = [r for r in rows if comparable(r)]
    missing = [r for r in rows if not comparable(r)]
    try:
        present.sort(key=lambda r: r[field], reverse=desc)
    except TypeError:  # mixed types: compare as text
        present.sort(key=lambda r: str(r[field]), reverse=desc)
    return present + missing


class Catalogue:
    """All offers, with which are rented, vanished or re-listed under a new id."""

    def __init__(self, offers: list[dict[str, Any]]) -> None:
        self.base: dict[int, dict[str, Any]] = {o["id"]: o for o in offers}
        self.extra: dict[int, dict[str, Any]] = {}  # machines re-listed after a destroy
        self.rented: dict[int, int] = {}  # offer id -> instance id
        self.vanished: set[int] = set()
        self.next_offer_id = NEW_OFFER_ID_START
        self.known_fields = set().union(*(o.keys() for o in offers)) if offers else set()

    @classmethod
    def load(cls, path: Path = OFFERS_FILE, now: float | None = None) -> Catalogue:
        """Load the shipped offers and move their contract window to around ``now``."""
        offers = json.loads(path.read_text(encoding="utf-8"))["offers"]
        now = time.time() if now is None else now
        for offer in offers:
            if offer.get("end_date") and offer.get("duration") is not None:
                shift = now - (offer["end_date"] - offer["duration"])
                offer["end_date"] += shift
                if offer.get("start_date"):
                    offer["start_date"] += shift
        return cls(offers)

    def offer(self, offer_id: int) -> dict[str, Any] | None:
        return self.base.get(offer_id) or self.extra.get(offer_id)

    def _taken_gpus(self) -> set[int]:
        taken: set[int] = set()
        for offer_id in self.rented:
            offer = self.offer(offer_id)
            if offer:
                taken.update(offer.get("gpu_ids") or [])
        return taken

    def available(self, offer_id: int) -> bool:
        """True when the offer can be rented now."""
        offer = self.offer(offer_id)
        if offer is None or offer_id in self.rented or offer_id in self.vanished:
            return False
        return not set(offer.get("gpu_ids") or []) & self._taken_gpus()

    def free_offers(self) -> list[dict[str, Any]]:
        taken = self._taken_gpus()
        return [o for oid, o in (self.base | self.extra).items()
                if oid not in self.rented and oid not in self.vanished
                and not set(o.get("gpu_ids") or []) & taken]

    def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Answer a search query (vast-api.md section 2) with priced rows."""
        if not isinstance(query, dict):
            raise ApiError.vast(400, "invalid_args", f"query must be a JSON object, got {query!r}")
        kind = TYPES.get(str(query.get("type", "on-demand")))
        if kind is None:
            raise ApiError.vast(400, "invalid_args", f"invalid type {query.get('type')!r}")
        try:
            storage = float(query.get("allocated_storage") or DEFAULT_ALLOCATED_STORAGE_GB)
            limit = int(query["limit"]) if query.get("limit") is not None else DEFAULT_LIMIT
        except (TypeError, ValueError) as exc:
            raise ApiError.vast(400, "invalid_args", f"Error in query parameters: {exc}") from None
        filters = parse_filters(query, self.known_fields | {"geolocation"})
        order = parse_order(query.get("order"))
        rows = [priced(o, storage, kind) for o in self.free_offers()]
        rows = [r for r in rows if matches(r, filters)]
        rows.sort(key=lambda r: r["id"])
        for field, desc in reversed(order):
            rows = sort_rows(rows, field, desc)
        return rows[: max(limit, 0)]

    def gpu_names(self) -> list[str]:
        """Distinct ``gpu_name`` of every offer, rented or not (``/gpu_names/unique/``)."""
        return sorted({str(o["gpu_name"]) for o in (self.base | self.extra).values()
                       if o.get("gpu_name")})

    def rent(self, offer_id: int, instance_id: int) -> dict[str, Any]:
        """Take the offer for ``instance_id``; no_such_ask when it is gone or never existed."""
        if self.offer(offer_id) is None:
            raise ApiError.vast(404, "invalid_args",
                                f"error 404/3603: no_such_ask Instance type by id {offer_id} "
                                "is not available.", ask_id=offer_id)
        if not self.available(offer_id):
            raise self.gone(offer_id)
        self.rented[offer_id] = instance_id
        return copy.deepcopy(self.offer(offer_id))  # type: ignore[arg-type]

    @staticmethod
    def gone(offer_id: int) -> ApiError:
        return ApiError.vast(410, "no_such_ask",
                             f"error 410/3907: no_such_ask Instance type {offer_id} is no longer "
                             "available.", ask_id=offer_id)

    def vanish(self, offer_id: int) -> None:
        """Someone else rented it: it never comes back under this id."""
        self.vanished.add(offer_id)

    def release(self, offer_id: int) -> int | None:
        """The instance on ``offer_id`` was destroyed: free the GPUs, re-list the machine."""
        if self.rented.pop(offer_id, None) is None:
            return None
        self.vanished.add(offer_id)
        old = self.offer(offer_id)
        if old is None:
            return None
        new = copy.deepcopy(old)
        new_id = self.next_offer_id
        self.next_offer_id += 1
        new["id"] = new["ask_contract_id"] = new_id
        self.extra[new_id] = new
        return new_id

    def to_state(self) -> dict[str, Any]:
        return {"extra": list(self.extra.values()),
                "rented": [[k, v] for k, v in self.rented.items()],
                "vanished": sorted(self.vanished), "next_offer_id": self.next_offer_id}

    def restore(self, state: dict[str, Any]) -> None:
        self.extra = {o["id"]: o for o in state.get("extra", [])}
        self.rented = {int(k): int(v) for k, v in state.get("rented", [])}
        self.vanished = set(state.get("vanished", []))
        self.next_offer_id = int(state.get("next_offer_id", NEW_OFFER_ID_START))

