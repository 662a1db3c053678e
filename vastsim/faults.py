"""Fault injection: what goes wrong next, each fault with a count so tests are exact.

A fault is a JSON object with a ``kind`` and, unless said otherwise, ``count`` (default 1): how
many times it fires before it is used up. Kinds:

=================  ==========================================================================
``offer_taken``    ``offer_ids: [..]`` (each fires once, on a rent of that id) or ``count``
                   (the next N rents, whatever the id): the rent answers 410 no_such_ask and
                   the offer vanishes, as if someone else rented it after your search.
``stuck_loading``  the next N rented instances stay in ``loading`` for ever.
``exited``         the next N rented instances go to ``exited`` (with ``status_msg``) instead
                   of ``running``.
``ssh_refuse``     the next N rented instances refuse SSH for ``seconds`` after ``running``.
``rate_limit``     the next N matching API requests answer 429, with ``Retry-After:
                   <retry_after>`` when given (seconds); ``body`` ``"text"`` (plain ``API
                   requests too frequent``), ``"json"`` (``{"detail": ...}``), ``"both"``
                   (alternating, text first) or ``"quota"`` (the daily search quota:
                   ``{"error": "search_quota_exceeded", ...}``).
``server_error``   the next N matching API requests answer ``status`` (500, 502, 503 or 504);
                   ``after: true`` does the work first and then answers the error (the answer
                   got lost: a rent then creates an instance the client never hears of).
``slow``           the next N matching API requests are answered ``delay_s`` seconds late.
``bad_answer``     the next N matching API requests answer 200 with ``text`` as the body (a
                   proxy's page, a truncated or wrongly shaped JSON), the work not done.
=================  ==========================================================================

Request faults (``rate_limit``, ``server_error``, ``slow``, ``bad_answer``) match every
``/api/`` request, or only those whose method equals ``method`` and whose path matches the
regex ``path`` (``re.search``); ``skip: K`` lets the first K matching requests through before
the fault starts to fire. Admin requests under ``/_sim/`` never fault.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = frozenset({"offer_taken", "stuck_loading", "exited", "ssh_refuse", "rate_limit",
                   "server_error", "slow", "bad_answer"})
REQUEST_KINDS = frozenset({"rate_limit", "server_error", "slow", "bad_answer"})
SERVER_ERROR_STATUSES = frozenset({500, 502, 503, 504})
RATE_LIMIT_BODIES = frozenset({"text", "json", "both", "quota"})
SPEC_KEYS = frozenset({"kind", "count", "method", "path", "offer_ids", "status", "after", "body",
                       "delay_s", "seconds", "status_msg", "retry_after", "text", "skip"})
DEFAULT_EXIT_MSG = "Error response from daemon: OCI runtime create failed: container exited\n"


class FaultSpecError(ValueError):
    """A fault spec that cannot be used; the message names the key and the value."""


@dataclass
class Fault:
    """One pending fault; ``remaining`` counts down to zero, then it is dropped."""

    id: int
    kind: str
    remaining: int
    method: str | None = None
    path: str | None = None
    offer_ids: list[int] | None = None
    status: int = 502
    after: bool = False
    body: str = "text"
    delay_s: float = 0.0
    seconds: float = 0.0
    status_msg: str = DEFAULT_EXIT_MSG
    retry_after: float | None = None
    text: str = ""
    skip: int = 0
    fired: int = field(default=0)

    def matches_request(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path and not re.search(self.path, path))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(spec: dict[str, Any], key: str, default: float, minimum: float = 0) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultSpecError(f"fault {spec.get('kind')!r}: {key} must be a number >= {minimum}, "
                             f"got {value!r}")
    return float(value)


def parse(spec: Any, fault_id: int) -> Fault:
    """Check one fault spec (see the module docstring) and build the Fault."""
    if not isinstance(spec, dict):
        raise FaultSpecError(f"a fault is a JSON object, got {spec!r}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise FaultSpecError(f"fault kind must be one of {sorted(KINDS)}, got {kind!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise FaultSpecError(f"fault {kind!r}: unknown key(s) {sorted(unknown)}")
    fault = Fault(id=fault_id, kind=kind, remaining=int(_number(spec, "count", 1, 1)))
    if kind in REQUEST_KINDS:
        fault.method = spec.get("method")
        fault.path = spec.get("path")
        fault.skip = int(_number(spec, "skip", 0))
        if fault.path is not None:
            try:
                re.compile(fault.path)
            except re.error as exc:
                raise FaultSpecError(f"fault {kind!r}: path {fault.path!r} is no regex: "
                                     f"{exc}") from None
    if kind == "offer_taken" and "offer_ids" in spec:
        ids = spec["offer_ids"]
        if not (isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)):
            raise FaultSpecError(f"fault 'offer_taken': offer_ids must be a non-empty list of "
                                 f"ints, got {ids!r}")
        fault.offer_ids = list(ids)
        fault.remaining = len(ids)
    if kind == "server_error":
        fault.status = int(_number(spec, "status", 502))
        if fault.status not in SERVER_ERROR_STATUSES:
            raise FaultSpecError(f"fault 'server_error': status must be one of "
                                 f"{sorted(SERVER_ERROR_STATUSES)}, got {fault.status}")
        fault.after = bool(spec.get("after", False))
    if kind == "rate_limit":
        fault.body = spec.get("body", "text")
        if fault.body not in RATE_LIMIT_BODIES:
            raise FaultSpecError(f"fault 'rate_limit': body must be one of "
                                 f"{sorted(RATE_LIMIT_BODIES)}, got {fault.body!r}")
        if "retry_after" in spec:
            fault.retry_after = _number(spec, "retry_after", 0)
    if kind == "bad_answer":
        text = spec.get("text", "")
        if not isinstance(text, str):
            raise FaultSpecError(f"fault 'bad_answer': text must be a string, got {text!r}")
        fault.text = text
    if kind == "slow":
        fault.delay_s = _number(spec, "delay_s", 1.0)
    if kind == "ssh_refuse":
        fault.seconds = _number(spec, "seconds", 5.0)
    if kind == "exited":
        fault.status_msg = str(spec.get("status_msg", DEFAULT_EXIT_MSG))
    return fault


class FaultBook:
    """The pending faults. Not thread-safe on its own: the caller holds the cloud's lock."""

    def __init__(self) -> None:
        self.pending: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, specs: Any) -> list[Fault]:
        """Add one spec, a list of them, or ``{"faults": [...]}``; all or none are added."""
        if isinstance(specs, dict) and "faults" in specs and "kind" not in specs:
            specs = specs["faults"]
        if not isinstance(specs, list):
            specs = [specs]
        faults = [parse(s, 0) for s in specs]
        for fault in faults:
            fault.id = next(self._ids)
        self.pending.extend(faults)
        return faults

    def clear(self) -> None:
        self.pending.clear()

    def _fire(self, fault: Fault) -> Fault:
        fault.remaining -= 1
        fault.fired += 1
        if fault.remaining <= 0:
            self.pending.remove(fault)
        return fault

    def take_request(self, kind: str, method: str, path: str) -> Fault | None:
        """Fire the first pending request fault of ``kind`` that matches, if any."""
        for fault in self.pending:
            if fault.kind == kind and fault.matches_request(method, path):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                return self._fire(fault)
        return None

    def take_offer(self, offer_id: int) -> Fault | None:
        """Fire an ``offer_taken`` fault for a rent of ``offer_id``, if one applies."""
        for fault in self.pending:
            if fault.kind != "offer_taken":
                continue
            if fault.offer_ids is None:
                return self._fire(fault)
            if offer_id in fault.offer_ids:
                fault.offer_ids.remove(offer_id)
                return self._fire(fault)
        return None

    def take(self, kind: str) -> Fault | None:
        """Fire the first pending fault of an instance ``kind`` (stuck_loading, exited...)."""
        for fault in self.pending:
            if fault.kind == kind:
                return self._fire(fault)
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.pending]

    def to_state(self) -> dict[str, Any]:
        return {"pending": [asdict(f) for f in self.pending]}

    def restore(self, state: dict[str, Any]) -> None:
        self.pending = [Fault(**f) for f in state.get("pending", [])]
        start = max((f.id for f in self.pending), default=0) + 1
        self._ids = itertools.count(start)
