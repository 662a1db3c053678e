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
    │   ├── TransportError               no HTTP answer: connect error, timeout (.status None)
    │   ├── AuthError                    401 / 403, or any body with error == "auth_error"
    │   ├── OfferGoneError               the offer was rented meanwhile (no_such_ask)
    │   ├── NotFoundError                the instance is gone (404, {"instances": null})
    │   ├── RateLimitedError             429, after the client's own retries
    │   └── ServerError                  5xx, after the client's own retries
    └── LifecycleError                   rent / wait failed; tells the story:
        │                                .offers_tried .states_seen .cleanup
        └── NoOfferError                 the search matched nothing: .query

``ConfigError`` is also a ``ValueError`` (like requests' ``InvalidURL``), so code that
validates input generically still catches it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigError",
    "CostCapError",
    "LifecycleError",
    "MissingApiKeyError",
    "NoOfferError",
    "NotFoundError",
    "OfferGoneError",
    "QueryError",
    "RateLimitedError",
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
    """No HTTP answer at all: connection refused, DNS, TLS, timeout. Chain the cause."""


class AuthError(ApiError):
    """The key was refused (401/403, or ``auth_error`` in the body even with a 404)."""


class OfferGoneError(ApiError):
    """The offer was rented by someone else between search and rent (``no_such_ask``).

    Not a failure of the run: the caller moves on to the next offer.
    """


class NotFoundError(ApiError):
    """The instance no longer exists; for destroy that means success."""


class RateLimitedError(ApiError):
    """HTTP 429 that outlasted the client's retries (Vast sends no Retry-After)."""


class ServerError(ApiError):
    """HTTP 5xx that outlasted the client's retries."""


class LifecycleError(VastError):
    """Renting or waiting failed; the message tells the whole story.

    ``offers_tried`` are short descriptions of each offer rented or attempted, ``states_seen``
    the instance states in the order observed (with Vast's ``status_msg`` where it said one),
    and ``cleanup`` what was done about anything rented (destroyed and verified, or which
    instance may still bill).
    """

    def __init__(
        self,
        reason: str,
        *,
        offers_tried: Sequence[str] = (),
        states_seen: Sequence[str] = (),
        cleanup: str | None = None,
    ) -> None:
        self.reason = reason
        self.offers_tried = tuple(offers_tried)
        self.states_seen = tuple(states_seen)
        self.cleanup = cleanup
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [self.reason]
        if self.offers_tried:
            lines.append("  offers tried: " + ", ".join(self.offers_tried))
        if self.states_seen:
            lines.append("  states seen: " + " -> ".join(self.states_seen))
        if self.cleanup:
            lines.append("  cleanup: " + self.cleanup)
        return "\n".join(lines)


class NoOfferError(LifecycleError):
    """The search returned no offer (or none left to try); ``query`` is what was asked."""

    def __init__(
        self,
        query: str,
        *,
        offers_tried: Sequence[str] = (),
        states_seen: Sequence[str] = (),
        cleanup: str | None = None,
    ) -> None:
        self.query = query
        reason = f"no offer matches the query {query!r}"
        if offers_tried:
            reason = f"no offer left to try for the query {query!r}"
        super().__init__(
            reason, offers_tried=offers_tried, states_seen=states_seen, cleanup=cleanup
        )


class CostCapError(LifecycleError):
    """Every matching offer's estimate exceeds the stack's maxCost; raised before any rent."""

    def __init__(self, reason: str, *, estimate_total: float, max_cost: float) -> None:
        self.estimate_total = estimate_total
        self.max_cost = max_cost
        super().__init__(reason, cleanup="nothing was rented")
