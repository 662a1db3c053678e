"""The vast CLI offer-query grammar, turned into the JSON body of ``POST /bundles/``. Pure.

Users already know the grammar of ``vastai search offers 'gpu_ram>=20 num_gpus=1'``, so the
stack's ``query`` and ``order`` settings use it unchanged, and this module sends exactly what
the official CLI sends for them (``vastai/api/query.py::parse_query``; notes in docs/vast-api.md,
"Query grammar"): operators and their word forms, field aliases, unit multipliers (x1000 for RAM,
not x1024), ``driver_version`` to ``MMMmmmppp``, underscores to spaces, lists for ``in`` /
``notin``, ``field=any`` to drop a filter, and numbers sent as *strings* (the server coerces
them) unless the field has a multiplier; ``true/false/None`` become JSON only as a single
value, never inside a list.

Where we are stricter than the CLI, on purpose (a filter the server silently ignores rents the
wrong machine, and rented machines bill):

- An unknown field name is a ``QueryError`` listing the known ones (the CLI only warns and
  sends it; the server then ignores it).
- An unquoted value containing ``= < > !`` is an error: it is always a missing value or a
  missing space (``num_gpus= gpu_ram>=20``), which the CLI would send as a string.
- A multiplied field with a non-number, a malformed dotted ``driver_version``, a list on a
  multiplied field or an order entry with a sign at both ends are ``QueryError``s where the
  CLI crashes or sends garbage; lists on multiplied fields are multiplied item by item.
- Tabs and newlines count as spaces (a multi-line YAML value), so positions stay valid.

Kept from the CLI because users rely on it: a later comparison on the same field and operator
wins; a quoted ``"any"`` is sent literally (``rentable="any"`` is how to switch off the
server's own ``rentable=true`` default, docs/vast-api.md), while an unquoted ``any``, ``*`` or
``?`` with ``=`` drops the field, our defaults included. Order fields are not checked against
the filter fields: the server sorts by result columns such as ``score`` that are not filters.

Every error is a ``QueryError`` carrying the query, the offending token and its 0-based
position.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from providers.errors import ConfigError, QueryError

__all__ = [
    "DEFAULT_FILTERS",
    "FIELD_ALIASES",
    "FIELD_MULTIPLIERS",
    "OFFER_FIELDS",
    "OFFER_TYPES",
    "OPERATORS",
    "ORDER_FIELDS",
    "build_search",
    "parse_order",
    "parse_query",
]

OFFER_FIELDS: frozenset[str] = frozenset(
    {
        # The CLI's offers_fields (vastai/api/query.py), plus os_version from the OpenAPI.
        "bw_nvlink", "cluster_id", "compute_cap", "cpu_arch", "cpu_cores",
        "cpu_cores_effective", "cpu_ghz", "cpu_ram", "cuda_max_good", "datacenter",
        "direct_port_count", "disk_bw", "disk_space", "dlperf", "dlperf_per_dphtotal",
        "dph_total", "driver_version", "duration", "external", "flops_per_dphtotal",
        "geolocation", "gpu_arch", "gpu_display_active", "gpu_frac", "gpu_max_power",
        "gpu_max_temp", "gpu_mem_bw", "gpu_name", "gpu_ram", "gpu_total_ram", "has_avx",
        "host_id", "id", "inet_down", "inet_down_cost", "inet_up", "inet_up_cost",
        "machine_id", "min_bid", "mobo_name", "num_gpus", "os_version", "pci_gen", "pcie_bw",
        "reliability", "rentable", "rented", "static_ip", "storage_cost", "total_flops",
        "ubuntu_version", "verification", "verified", "vms_enabled",
    }
)  # fmt: skip
"""Filter fields the server knows."""

ORDER_FIELDS: frozenset[str] = OFFER_FIELDS | frozenset(
    {
        # Scalar columns of an offer row (docs/vast-api.md; the recorded search answer).
        "bundle_id", "cpu_name", "credit_discount_max", "discount_rate", "discounted_dph_total",
        "discounted_hourly", "disk_name", "dph_base", "dph_total_adj", "driver_vers",
        "end_date", "gpu_lanes", "hosting_type", "hostname", "is_bid", "public_ipaddr",
        "reliability2", "reliability_mult", "score", "start_date", "storage_total_cost",
        "vram_costperhour",
    }
)  # fmt: skip
"""Fields an order may name: the filter fields plus the other columns of an offer row."""

FIELD_ALIASES: Mapping[str, str] = {
    "cuda_vers": "cuda_max_good",
    "display_active": "gpu_display_active",
    "dlperf_usd": "dlperf_per_dphtotal",
    "dph": "dph_total",
    "flops_usd": "flops_per_dphtotal",
}
"""Short names the CLI accepts in queries and orders (its ``offers_alias``)."""

FIELD_MULTIPLIERS: Mapping[str, float] = {
    "cpu_ram": 1000,  # typed GB, sent MB (x1000, not x1024: the CLI's choice since 2022)
    "gpu_ram": 1000,
    "gpu_total_ram": 1000,
    "duration": 24.0 * 60.0 * 60.0,  # typed days, sent seconds
}
"""Fields typed in one unit and sent in another; their values are sent as floats."""

OPERATORS: Mapping[str, str] = {
    ">=": "gte", "gte": "gte",
    ">": "gt", "gt": "gt",
    "<=": "lte", "lte": "lte",
    "<": "lt", "lt": "lt",
    "=": "eq", "==": "eq", "eq": "eq",
    "!=": "neq", "neq": "neq", "noteq": "neq", "not eq": "neq",
    "in": "in",
    "notin": "notin", "not in": "notin", "nin": "notin",
}  # fmt: skip
"""Operator as typed -> operator sent."""

LIST_OPERATORS = frozenset({"in", "notin"})
WILDCARDS = frozenset({"any", "*", "?"})

DEFAULT_FILTERS: Mapping[str, Mapping[str, bool]] = {
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
}
"""What the current CLI adds unless ``--no-default`` (docs/vast-api.md, "Query grammar")."""

OFFER_TYPES: Mapping[str, str] = {
    "on-demand": "on-demand",
    "ondemand": "on-demand",  # the OpenAPI's spelling
    "bid": "bid",
    "interruptible": "bid",  # the CLI maps it, so do we
    "reserved": "reserved",
}
"""Accepted ``offer_type`` values -> the ``type`` sent."""

# The CLI's tokenizer: field, operator (symbols, or a word between spaces), value (bracketed
# list, double-quoted string, or a run of non-spaces), trailing spaces.
_COMPARISON = re.compile(
    r"([a-zA-Z0-9_]+)"
    r"( *[=><!]+| +(?:[lg]te?|nin|neq|eq|not ?eq|not ?in|in) )?"
    r"( *)"
    r"(\[[^\]]+\]|\"[^\"]+\"|[^ ]+)?"
    r"( *)"
)
_ORDER_ITEM = re.compile(r"([+-]?)([a-zA-Z0-9_]+)([+-]?)")
_DRIVER_VERSION = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}")
_OPERATOR_CHARS = frozenset("=<>!")
_WHITESPACE = str.maketrans("\t\n\r\f\v", "     ")

Value = str | bool | float | int | None | list[Any]


def parse_query(text: str, *, defaults: bool = True) -> dict[str, dict[str, Value]]:
    """Parse a vast CLI offer query into the JSON filter object.

    With ``defaults`` the CLI's default filters come first, so ``verified=any`` in the query
    removes one, as with the CLI. Raises ``QueryError`` naming the token and position.
    """
    filters: dict[str, dict[str, Value]] = (
        {field: dict(ops) for field, ops in DEFAULT_FILTERS.items()} if defaults else {}
    )
    query = text.translate(_WHITESPACE)
    pos = len(query) - len(query.lstrip(" "))
    end = len(query.rstrip(" "))
    while pos < end:
        match = _COMPARISON.match(query, pos)
        if match is None:
            token = query[pos:].split(" ", 1)[0]
            raise QueryError(
                query, token, pos, "unconsumed text; expected a comparison like gpu_ram>=20"
            )
        _apply(filters, query, match)
        pos = match.end()
    return filters


def _apply(filters: dict[str, dict[str, Value]], query: str, match: re.Match[str]) -> None:
    """Add one ``field op value`` comparison to ``filters`` (or drop the field)."""
    typed_field, raw_op, _, raw_value, _ = match.groups(default="")
    op_text = raw_op.strip()
    if not op_text:
        if raw_value:
            reason = f"missing operator between {typed_field!r} and {raw_value!r}"
            raise QueryError(query, raw_value, match.start(4), reason)
        reason = "a word without operator; a value with spaces needs quotes or underscores"
        raise QueryError(query, typed_field, match.start(1), reason)
    field = FIELD_ALIASES.get(typed_field, typed_field)
    if field not in OFFER_FIELDS:
        raise QueryError(query, typed_field, match.start(1), _unknown_field_reason(typed_field))
    op = OPERATORS.get(op_text)
    op_position = match.start(2) + len(raw_op) - len(raw_op.lstrip(" "))
    if op is None:
        known = " ".join(sorted(OPERATORS, key=lambda o: (o[0].isalpha(), o)))
        raise QueryError(query, op_text, op_position, f"unknown operator; use one of: {known}")
    if not raw_value:
        raise QueryError(query, op_text, op_position, f"missing value after {op_text!r}")

    value_position = match.start(4)
    quoted = raw_value.startswith('"')
    value = raw_value.strip(",[]")
    if not quoted and _OPERATOR_CHARS.intersection(value):
        raise QueryError(
            query, raw_value, value_position,
            "value contains an operator; a missing value or a missing space? "
            "(quote it if it is meant)",
        )  # fmt: skip

    if op in LIST_OPERATORS:
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise QueryError(query, raw_value, value_position, "empty list")
        converted: Value = [
            _convert(field, item, query, raw_value, value_position, in_list=True)
            for item in items
        ]
    else:
        if not value:
            raise QueryError(query, raw_value, value_position, "empty value")
        if value in WILDCARDS:
            if op != "eq":
                raise QueryError(
                    query, raw_value, value_position, "Wildcard only makes sense with equals"
                )
            filters.pop(field, None)
            return
        converted = _convert(field, value, query, raw_value, value_position)
    filters.setdefault(field, {})[op] = converted


def _convert(
    field: str, value: str, query: str, token: str, position: int, *, in_list: bool = False
) -> Value:
    """One value, as the CLI converts it (docs/vast-api.md, "Query grammar").

    List items stay strings (``in [true,false]`` sends ``["true", "false"]``): the CLI turns
    only a single value into a JSON boolean or null.
    """
    if field == "driver_version" and "." in value:
        if not _DRIVER_VERSION.fullmatch(value):
            raise QueryError(
                query, token, position, "driver_version must look like 535.86.05 (X.Y.Z)"
            )
        return int("".join(part.zfill(3) for part in value.split(".")))
    value = value.replace("_", " ").strip('"')
    if field in FIELD_MULTIPLIERS:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise QueryError(query, token, position, f"{field} needs a number, got {value!r}")
        return number * FIELD_MULTIPLIERS[field]
    if in_list:
        return value
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    if value in ("None", "null"):
        return None
    return value


def _unknown_field_reason(typed: str) -> str:
    names = sorted(OFFER_FIELDS | FIELD_ALIASES.keys())
    close = difflib.get_close_matches(typed, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field; {hint}known fields: {', '.join(names)}"


def parse_order(text: str) -> list[list[str]]:
    """Parse the CLI's ``--order`` syntax: ``num_gpus-,dph+`` -> ``[[field, desc|asc], ...]``.

    A ``-`` at either end means descending, ``+`` or nothing ascending; aliases apply.
    """
    order_text = text.translate(_WHITESPACE)
    if not order_text.strip():
        raise QueryError(
            order_text, order_text, 0, "empty order; use e.g. 'dph+' or 'score-'",
            key="vast-gpu:order",
        )  # fmt: skip
    order: list[list[str]] = []
    start = 0
    for item in order_text.split(","):
        position = start + len(item) - len(item.lstrip(" "))
        entry = item.strip(" ")
        start += len(item) + 1
        match = _ORDER_ITEM.fullmatch(entry)
        if match is None or (match[1] and match[3]):
            raise QueryError(
                order_text, entry, position,
                "expected a field with an optional + or - at one end (like dph+ or score-)",
                key="vast-gpu:order",
            )  # fmt: skip
        sign = match[1] or match[3]
        field = FIELD_ALIASES.get(match[2], match[2])
        if field not in ORDER_FIELDS:
            names = sorted(ORDER_FIELDS | FIELD_ALIASES.keys())
            close = difflib.get_close_matches(match[2], names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise QueryError(
                order_text, entry, position,
                f"unknown order field {match[2]!r}; {hint}an offer has: {', '.join(names)}",
                key="vast-gpu:order",
            )  # fmt: skip
        order.append([field, "desc" if sign == "-" else "asc"])
    return order


def build_search(
    query: str | Mapping[str, Mapping[str, Value]],
    order: str | Sequence[Sequence[str]],
    *,
    disk_gb: float,
    offer_type: str = "on-demand",
    limit: int | None = None,
    max_price: float | None = None,
    defaults: bool = True,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/v0/bundles/``: filters plus order, type and storage.

    ``query`` and ``order`` are the CLI texts (or already parsed). ``disk_gb`` is sent as
    ``allocated_storage`` so ``dph_total`` includes the storage we will pay for. ``max_price``
    caps ``dph_total`` ($/h) on the server side; a stricter cap in the query is kept.
    """
    if isinstance(query, str):
        body: dict[str, Any] = parse_query(query, defaults=defaults)
    else:
        body = {field: dict(ops) for field, ops in query.items()}
    if max_price is not None:
        cap = _positive("vast-gpu:maxPricePerHour", max_price)
        price = body.setdefault("dph_total", {})
        if not _at_most(price.get("lte"), cap):
            price["lte"] = cap
    body["order"] = parse_order(order) if isinstance(order, str) else [[f, d] for f, d in order]
    if offer_type not in OFFER_TYPES:
        raise ConfigError("offer_type", offer_type, f"use one of: {', '.join(OFFER_TYPES)}")
    body["type"] = OFFER_TYPES[offer_type]
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError("limit", limit, "must be a positive integer")
        body["limit"] = limit
    body["allocated_storage"] = _positive("vast-gpu:disk", disk_gb)
    return body


def _positive(key: str, value: object) -> float:
    """``value`` as a finite float > 0, else a ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, value, "must be a number")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(key, value, "must be a positive number")
    return number


def _at_most(existing: object, cap: float) -> bool:
    """Whether a ``dph_total lte`` already in the query is at least as strict as ``cap``."""
    try:
        return float(existing) <= cap  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
