"""How one stack value is read and checked: each parser takes text (stack config) or a typed
value (resource inputs) and returns it typed, or raises ValueError saying what it must be;
providers/settings.py's KEYS table names which parser reads which key."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from providers.credentials import resolve_api_url
from providers.query import parse_order, parse_query
from remote.watchdog import parse_duration

MAX_LABEL_CHARS = 900  # vast.ai allows 1024; our tag takes the rest
MAX_IMAGE_CHARS = 1024
Parser = Callable[[Any], Any]

# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_IMAGE = re.compile(
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*"
    r"[a-zA-Z0-9])?))*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:"
    r"[0-9a-fA-F]{32,})?"
)


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


def whole(value: Any) -> int:
    n = number(value)
    if n != int(n):
        raise ValueError("must be a whole number")
    return int(n)


def at_least(low: float, unit: str, parse: Parser = number, strict: bool = False) -> Parser:
    def check(value: Any) -> Any:
        n = parse(value)
        if n < low or (strict and n == low):
            raise ValueError(f"must be {unit} {'above' if strict else '>='} {low:g}")
        return n
    return check


def between(low: float, high: float, unit: str, parse: Parser = number) -> Parser:
    def check(value: Any) -> Any:
        n = parse(value)
        if not low <= n <= high:
            raise ValueError(f"must be {unit} between {low:g} and {high:g}")
        return n
    return check


def duration(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        n = whole(value)
        if n < 0:
            raise ValueError("must be a duration like 90, 45s, 30m or 12h; 0 = off")
        return n
    try:
        return parse_duration(text(value))
    except ValueError as exc:
        raise ValueError(f"{exc}; 0 = off") from None


def image(value: Any) -> str:
    t = text(value)
    if not t or len(t) > MAX_IMAGE_CHARS or not _IMAGE.fullmatch(t):
        raise ValueError("must be a Docker image reference like pytorch/pytorch:2.4.0 or "
                         "ghcr.io/owner/name:tag (lowercase, no spaces or shell characters)")
    return t


def query(value: Any) -> str:
    parse_query(text(value))
    return value


def order(value: Any) -> str:
    parse_order(text(value))
    return value


def env(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("must be a map of NAME: value") from None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("must be a map of NAME: string value (quote numbers and booleans)")
    return dict(value)


def label(value: Any) -> str:
    t = text(value)
    if len(t) > MAX_LABEL_CHARS:
        raise ValueError(f"must be text of at most {MAX_LABEL_CHARS} characters")
    return t


def remote_dir(value: Any) -> str:
    t = text(value)
    if not t.startswith("/") or "\0" in t or "\n" in t:
        raise ValueError("must be an absolute path on the instance, like /app")
    return t.rstrip("/") or "/"


def url(value: Any) -> str:
    return resolve_api_url(text(value), {})
