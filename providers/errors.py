"""Every error the providers package raises on purpose, in one tree.

Callers catch ``VastError`` once (tasks.py turns it into ``invoke.Exit``); everything else is
a bug and keeps its traceback. Data lives in attributes, the message is built from them, and
no message ever contains the API key: ``ApiError`` keeps a path, never a URL, and scrubs any
``api_key=`` it is handed anyway.

Our exception hierarchy::

    VastError
    ├── ConfigError (also a ValueError)  a bad stack setting or input: .key .value .reason
    │   ├── QueryError                   the offer query or order: .query .token .position
    │   └── MissingApiKeyError           no key anywhere: .places (all of them, in order)
    ├── ApiError                         a call to the REST API failed:
    │   │                                .method .path .status .error .msg
    │   ├── TransportError               no HTTP answer: connect error, timeout (.status None);
    │   │                                .sent False when the request never left (safe to resend)
    │   ├── AuthError                    401 / 403, or any body with error == "auth_error"
    │   ├── OfferGoneError               the offer was rented meanwhile, or its machine cannot
    │   │                                host it now (no_such_ask, cancel_unavail)
    │   ├── NotFoundError                the instance is gone (404, {"instances": null})
    │   ├── RateLimitedError             429, after the client's own retries: .retry_after
    │   │   └── QuotaExceededError       the daily search quota: never retried
    │   └── ServerError                  5xx, after the client's own retries
    ├── SelectionError                   no offer can be rented, decided before any rent
    │   │                                (nothing was rented): .query
    │   ├── NoOfferError                 the search (after price cap and exclusions) is empty
    │   ├── BidTooLowError               every match asks a min_bid above bidPrice: .lowest_min_bid
    │   └── CostCapError                 every match's estimate is above maxCost
    ├── LifecycleError                   rent / wait failed after renting; tells the story:
    │   │                                .offers_tried .states_seen .cleanup .logs
    │   └── MaybeBillingError            an instance may bill that no state knows: .label
    └── InstanceGoneError                the instance a stack holds no longer exists: .instance_id

``ConfigError`` is also a ``ValueError`` (like requests' ``InvalidURL``), so code that
validates input generically still catches it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ApiError",
    "AuthError",
    "BidTooLowError",
    "ConfigError",
    "CostCapError",
    "InstanceGoneError",
    "LifecycleError",
    "MaybeBillingError",
    "MissingApiKeyError",
    "NoOfferError",
    "NotFoundError",
    "OfferGoneError",
    "QueryError",
    "QuotaExceededError",
    "RateLimitedError",
    "SelectionError",
    "ServerError",
    "TransportError",
    "VastError",
    "scrub",
]

MAX_MSG_CHARS = 500
"""Vast's ``msg`` (or a plain-text / HTML body) is cut to this length in messages."""

_API_KEY_PARAM = re.compile(r"(api_key=)[^&#\s]*", re.IGNORECASE)


def scrub(text: str) -> str:
    """Blank out ``api_key=...`` query parameters: old clients put the key in URLs."""
    return _API_KEY_PARAM.sub(r"\1***", text)


class VastError(Exception):
    """Base of everything the providers package raises on purpose."""


class ConfigError(VastError, ValueError):
    """A stack setting or input is missing or invalid.

    ``key`` is the setting as the user writes it (``vast-gpu:disk``, ``VAST_URL``), ``value``
    what was given, ``reason`` what is wrong with it. Never construct one with a secret as
    ``value``.
    """

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.key} = {self.value!r}: {self.reason}"


class QueryError(ConfigError):
    """The offer query (or ``--order``) text cannot be parsed.

    ``position`` is a 0-based index into ``query``; the message repeats the query with a caret
    under it, so the user sees the spot without counting.
    """

    def __init__(
        self,
        query: str,
        token: str,
        position: int,
        reason: str,
        *,
        key: str = "vast-gpu:query",
    ) -> None:
        self.query = query
        self.token = token
        self.position = position
        super().__init__(key, query, reason)

    def _message(self) -> str:
        caret = " " * self.position + "^"
        return (
            f"{self.key}: {self.token!r} at position {self.position}: {self.reason}\n"
            f"  {self.query}\n"
            f"  {caret}"
        )


class MissingApiKeyError(ConfigError):
    """No API key was found in any of the places we look (``places``, in order)."""

    def __init__(self, places: Sequence[str], hint: str) -> None:
        self.places = tuple(places)
        self.hint = hint
        super().__init__("vast-gpu:apiKey", None, "no vast.ai API key found")

    def _message(self) -> str:
        looked = "\n".join(f"  {i}. {place}" for i, place in enumerate(self.places, 1))
        return f"no vast.ai API key found; looked in, in order:\n{looked}\n{self.hint}"


class ApiError(VastError):
    """A call to the vast.ai REST API failed.

    ``path`` is the request path (``/api/v0/asks/4711/``), never a full URL: the key must not
    reach a message. ``status`` is the HTTP status (None when no answer came), ``error`` and
    ``msg`` are Vast's own fields from the JSON body (for a non-JSON body, ``msg`` is its
    text).
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int | None = None,
        error: str | None = None,
        msg: str | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = scrub(path)
        self.status = status
        self.error = error
        self.msg = scrub(msg) if msg is not None else None
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"{self.method} {self.path}"]
        if self.status is not None:
            parts.append(f"-> HTTP {self.status}")
        if self.error:
            parts.append(self.error)
        text = " ".join(parts)
        if self.msg:
            msg = " ".join(self.msg.split())
            if len(msg) > MAX_MSG_CHARS:
                msg = msg[:MAX_MSG_CHARS] + "..."
            text += f": {msg}"
        return text


class TransportError(ApiError):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout. Chain the cause.

    ``sent`` is False only when the connection never opened, so the service cannot have
    acted on the request; True (or None) means it may have.
    """

    def __init__(self, method: str, path: str, status: int | None = None,
                 error: str | None = None, msg: str | None = None, *,
                 sent: bool | None = None) -> None:
        self.sent = sent
        super().__init__(method, path, status, error, msg)


class AuthError(ApiError):
    """The key was refused (401/403, or ``auth_error`` in the body even with a 404)."""


class OfferGoneError(ApiError):
    """The offer cannot be rented after all: taken between search and rent (``no_such_ask``),
    or its machine's GPUs are busy and ``cancel_unavail`` refused to queue a stopped instance.

    Not a failure of the run: the caller moves on to the next offer.
    """


class NotFoundError(ApiError):
    """The instance no longer exists; for destroy that means success."""


class RateLimitedError(ApiError):
    """HTTP 429 that outlasted the client's retries; ``retry_after`` the server's hint (s)."""

    def __init__(self, method: str, path: str, status: int | None = None,
                 error: str | None = None, msg: str | None = None, *,
                 retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(method, path, status, error, msg)


class QuotaExceededError(RateLimitedError):
    """The account's daily search quota is used up (``search_quota_exceeded``); it resets at
    00:00 UTC, so retrying only burns requests."""

    def _message(self) -> str:
        return super()._message() + " (the daily search quota resets at 00:00 UTC; not retried)"


class ServerError(ApiError):
    """HTTP 5xx that outlasted the client's retries."""


class SelectionError(VastError):
    """No offer can be rented; decided from the search alone, so nothing was rented."""

    def __init__(self, reason: str, *, query: str) -> None:
        self.reason = reason
        self.query = query
        super().__init__(f"{reason}; nothing was rented")


class NoOfferError(SelectionError):
    """The search matched nothing, after the price cap and the machines excluded."""

    def __init__(self, query: str, *, detail: str | None = None) -> None:
        reason = f"no offer matches the query {query!r}"
        super().__init__(reason + (f" ({detail})" if detail else ""), query=query)


class BidTooLowError(SelectionError):
    """Every matching offer asks a ``min_bid`` above the stack's ``bidPrice``."""

    def __init__(self, query: str, *, bid: float, lowest_min_bid: float, offers: int) -> None:
        self.bid = bid
        self.lowest_min_bid = lowest_min_bid
        super().__init__(
            f"bidPrice ${bid:.4f}/h is below the min_bid of all {offers} matching offer(s) "
            f"(the lowest is ${lowest_min_bid:.4f}/h): raise it, e.g. `pulumi config set "
            f"vast-gpu:bidPrice {lowest_min_bid:.4f}`, or unset it to rent on demand",
            query=query,
        )


class CostCapError(SelectionError):
    """Every matching offer's estimate exceeds the stack's maxCost."""

    def __init__(self, reason: str, *, query: str, estimate_total: float,
                 max_cost: float) -> None:
        self.estimate_total = estimate_total
        self.max_cost = max_cost
        super().__init__(reason, query=query)


class LifecycleError(VastError):
    """Renting or waiting failed after something was rented; the message tells the story.

    ``offers_tried`` are short descriptions of each offer rented or attempted, ``states_seen``
    the instance states in the order observed (with Vast's ``status_msg`` where it said one),
    ``cleanup`` what was done about anything rented (destroyed and verified, or which
    instance may still bill), and ``logs`` the last log lines of the instances that failed.
    """

    def __init__(
        self,
        reason: str,
        *,
        offers_tried: Sequence[str] = (),
        states_seen: Sequence[str] = (),
        cleanup: str | None = None,
        logs: Sequence[str] = (),
    ) -> None:
        self.reason = reason
        self.offers_tried = tuple(offers_tried)
        self.states_seen = tuple(states_seen)
        self.cleanup = cleanup
        self.logs = tuple(logs)
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [self.reason]
        if self.offers_tried:
            lines.append("  offers tried: " + ", ".join(self.offers_tried))
        if self.states_seen:
            lines.append("  states seen: " + " -> ".join(self.states_seen))
        if self.cleanup:
            lines.append("  cleanup: " + self.cleanup)
        if self.logs:
            lines.append("  last log lines:")
            lines += [f"    {line[:MAX_MSG_CHARS]}" for line in self.logs]
        return "\n".join(lines)


class MaybeBillingError(LifecycleError):
    """An instance may have been rented and may bill, but no look-up could tell: the message
    says which label to look for and the command that finds and destroys it."""

    def __init__(self, reason: str, *, label: str, **story: Any) -> None:
        self.label = label
        super().__init__(reason, **story)


class InstanceGoneError(VastError):
    """The instance a stack records was destroyed behind its back (or by the dead-man switch)."""

    def __init__(self, instance_id: int, what_to_do: str) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id} no longer exists: {what_to_do}")
