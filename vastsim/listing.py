"""``GET /api/v1/instances/``: filters, order, keyset pages and the page's summary. Pure.

Query args, each JSON text (what vastai 1.9.1 ``show instances`` sends):

* ``select_filters``  ``{col: {op: value}}``, ops ``eq neq gt gte lt lte in notin``; a bare
  value means ``eq``; ``null`` in an ``in`` list matches a null column (the CLI sends
  ``{"label": {"in": [null]}}`` for ``--label ''``). Computed columns (``dph_total``,
  ``num_gpus``) and unknown ones are refused: 400 "Error in query parameters: X is not a valid
  search key", as vast.ai answers (vast-api.md).
* ``order_by``  ``[{"col": c, "dir": "asc"|"desc"}]``; ``id asc`` is always appended as the
  tiebreaker. Nulls sort last either way.
* ``limit``  rows per page, at most 25; <= 0 means 5; absent means 25.
* ``after_token``  the previous page's ``next_token``: base64 of ``{"values": [...]}``, the
  sort key of that page's last row, so a page boundary survives rows destroyed meanwhile
  (keyset paging). Anything else: 400 ``invalid_token``.
* ``select_cols``  ``["*"]`` (default) or column names; unknown columns come back null.

``GET /api/v0/instances/filters/`` (which the CLI's ``show instances`` asks before the list)
answers the distinct ``actual_status``/``verification``/``gpu_name`` combinations.

The answer: ``{"success": true, "instances_found": <rows on this page>, "total_instances":
<rows matching the filters>, "label_counts": {label or "": n} over those rows, "next_token":
<text> or null on the last page, "instances": [...]}``. Which set ``total_instances`` and
``label_counts`` count (matching rows, not the whole account) is our reading of the CLI, which
prints them beside the active filters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections import Counter
from typing import Any

from vastsim.errors import ApiError

MAX_LIMIT = 25
NONPOSITIVE_LIMIT = 5
OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"})
COMPUTED = frozenset({"dph_total", "num_gpus"})  # not stored columns: not filterable


def _bad(msg: str, error: str = "invalid_args") -> ApiError:
    return ApiError.vast(400, error, msg)


def _json_arg(query: dict[str, list[str]], name: str, default: Any) -> Any:
    raw = query.get(name, [""])[0]
    if raw == "":
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad(f"Error in query parameters: {name} is not valid JSON") from None


def parse_filters(query: dict[str, list[str]], columns: set[str]) -> dict[str, dict[str, Any]]:
    raw = _json_arg(query, "select_filters", {})
    if not isinstance(raw, dict):
        raise _bad("Error in query parameters: select_filters must be a JSON object")
    filters: dict[str, dict[str, Any]] = {}
    for col, spec in raw.items():
        if col in COMPUTED or col not in columns:
            raise _bad(f"Error in query parameters: {col} is not a valid search key")
        ops = spec if isinstance(spec, dict) else {"eq": spec}
        for op in ops:
            if op not in OPS:
                raise _bad(f"Error in query parameters: {op!r} is not an operator on {col}")
        filters[col] = ops
    return filters


def parse_order(query: dict[str, list[str]], columns: set[str]) -> list[tuple[str, bool]]:
    """[(column, descending)], ``id`` appended when missing."""
    raw = _json_arg(query, "order_by", [{"col": "id", "dir": "asc"}])
    if not isinstance(raw, list):
        raise _bad("Error in query parameters: order_by must be a JSON list")
    order = []
    for item in raw:
        col = item.get("col") if isinstance(item, dict) else None
        direction = str(item.get("dir", "asc")).lower() if isinstance(item, dict) else ""
        if col not in columns or direction not in ("asc", "desc"):
            raise _bad(f"Error in query parameters: bad order_by entry {item!r}")
        order.append((col, direction == "desc"))
    if "id" not in {c for c, _ in order}:
        order.append(("id", False))
    return order


def parse_limit(query: dict[str, list[str]]) -> int:
    raw = _json_arg(query, "limit", MAX_LIMIT)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _bad(f"Error in query parameters: limit must be a number, got {raw!r}")
    return NONPOSITIVE_LIMIT if raw <= 0 else min(int(raw), MAX_LIMIT)


def parse_cols(query: dict[str, list[str]]) -> list[str] | None:
    """None for every column."""
    raw = _json_arg(query, "select_cols", ["*"])
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise _bad("Error in query parameters: select_cols must be a list of column names")
    return None if "*" in raw else raw


def encode_token(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"values": values}).encode()).decode()


def decode_token(token: str, width: int) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        values = data["values"]
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise _bad(f"invalid after_token {token!r}", "invalid_token") from None
    if not isinstance(values, list) or len(values) != width:
        raise _bad(f"invalid after_token {token!r} for this order_by", "invalid_token")
    return values


def _matches(row: dict[str, Any], filters: dict[str, dict[str, Any]]) -> bool:
    for col, ops in filters.items():
        have = row.get(col)
        for op, want in ops.items():
            if op in ("in", "notin"):
                items = want if isinstance(want, list) else [want]
                if (have in items) != (op == "in"):
                    return False
            elif not _compare_op(op, have, want):
                return False
    return True


def _compare_op(op: str, have: Any, want: Any) -> bool:
    if op == "eq":
        return bool(have == want)
    if op == "neq":
        return bool(have != want)
    if have is None or want is None:
        return False
    c = _cmp(have, want)
    return {"gt": c > 0, "gte": c >= 0, "lt": c < 0, "lte": c <= 0}[op]


def _cmp(a: Any, b: Any) -> int:
    """Three-way compare of two non-null column values (text when the types differ)."""
    try:
        return (a > b) - (a < b)
    except TypeError:
        return (str(a) > str(b)) - (str(a) < str(b))


def _cmp_keys(a: list[Any], b: list[Any], order: list[tuple[str, bool]]) -> int:
    for x, y, (_, desc) in zip(a, b, order, strict=True):
        if x is None or y is None:  # nulls last, whatever the direction
            c = (x is None) - (y is None)
        else:
            c = -_cmp(x, y) if desc else _cmp(x, y)
        if c:
            return c
    return 0


def page(rows: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """The v1 answer for the account's instance records ``rows`` and the request's args."""
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    columns |= {"id", "label", "actual_status", "gpu_name", "verification", "start_date"}
    filters = parse_filters(query, columns)
    order = parse_order(query, columns)
    limit = parse_limit(query)
    cols = parse_cols(query)
    matching = [r for r in rows if _matches(r, filters)]

    def key(row: dict[str, Any]) -> list[Any]:
        return [row.get(c) for c, _ in order]

    matching.sort(key=functools.cmp_to_key(lambda a, b: _cmp_keys(key(a), key(b), order)))
    rest = matching
    token = query.get("after_token", [""])[0]
    if token:
        after = decode_token(token, len(order))
        rest = [r for r in matching if _cmp_keys(key(r), after, order) > 0]
    chunk = rest[:limit]
    next_token = encode_token(key(chunk[-1])) if len(rest) > limit else None
    labels = Counter(r.get("label") or "" for r in matching)
    shown = chunk if cols is None else [{c: r.get(c) for c in cols} for r in chunk]
    return {"success": True, "instances_found": len(shown), "total_instances": len(matching),
            "label_counts": dict(labels), "next_token": next_token, "instances": shown}


FILTER_COLS = ("actual_status", "verification", "gpu_name")


def filter_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``GET /api/v0/instances/filters/``: each distinct (status, verification, GPU) present.

    The shape is read off vastai 1.9.1, which takes ``filters`` and each entry's three keys.
    """
    combos = sorted({tuple(str(r.get(c) or "") for c in FILTER_COLS) for r in rows})
    return [dict(zip(FILTER_COLS, combo, strict=True)) for combo in combos]
