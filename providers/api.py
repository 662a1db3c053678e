"""VastClient: one method per vast.ai REST endpoint we use, and the one place HTTP happens.

Facts it encodes (shared/docs/vast-api.md): the key goes in an ``Authorization: Bearer`` header,
never in a URL; Vast sends 429 without Retry-After, so we back off ourselves; a bad key may come
back as 404 with ``auth_error``; a destroyed instance reads as ``{"instances": null}``. Retries
cover idempotent calls only: a rent that fails ambiguously is never sent again blindly, the
caller looks the instance up by its label instead (lifecycle.py).

requests' exceptions and HTTP statuses become providers.errors classes here and nowhere else.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from providers.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OfferGoneError,
    RateLimitedError,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v0"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ATTEMPTS = 6
BACKOFF_FIRST_S = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_MAX_S = 10.0
USER_AGENT = "vast-gpu/0.1"

_OFFER_GONE_MARKERS = ("no_such_ask", "no longer available", "not available")
_NOT_FOUND_ERRORS = frozenset({"no_such_instance", "not_found"})


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls back off; tests shrink the delays, never the logic."""

    attempts: int = MAX_ATTEMPTS
    first_delay_s: float = BACKOFF_FIRST_S
    factor: float = BACKOFF_FACTOR
    max_delay_s: float = BACKOFF_MAX_S

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, for the attempt-th retry (1-based)."""
        ceiling = min(self.max_delay_s, self.first_delay_s * self.factor ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


class VastClient:
    """A thin, typed client for the vast.ai REST API (or vastsim, which answers the same)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.trust_env = False  # no proxies or .netrc credentials from the environment
        self._session.headers["User-Agent"] = USER_AGENT
        if api_key:  # searching offers works without a key
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._sleep = sleep
        self.calls = 0
        """Requests sent, retries included: the "API calls per create" figure."""

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        return f"VastClient({self._base!r})"

    def close(self) -> None:
        self._session.close()

    # -- offers -------------------------------------------------------------------------------

    def search_offers(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        """POST /bundles/ with the JSON filter (read-only, so retried)."""
        answer = self._call("POST", "/bundles/", json=dict(query), idempotent=True)
        offers = answer.get("offers")
        if not isinstance(offers, list):
            raise ApiError("POST", _path("/bundles/"), 200, None, "answer has no 'offers' list")
        return offers

    def rent(self, offer_id: int, body: Mapping[str, Any]) -> int:
        """PUT /asks/{id}/: rent the offer; returns the new instance id. Never retried."""
        path = f"/asks/{int(offer_id)}/"
        answer = self._call("PUT", path, json=dict(body), idempotent=False)
        contract = answer.get("new_contract")
        if not answer.get("success", True) or not isinstance(contract, int):
            raise ApiError("PUT", _path(path), 200, answer.get("error"), _msg_of(answer))
        return contract

    # -- instances ----------------------------------------------------------------------------

    def show_instance(self, instance_id: int) -> dict[str, Any] | None:
        """The instance record, or None once it is gone ({"instances": null} or 404)."""
        try:
            answer = self._call("GET", f"/instances/{int(instance_id)}/", idempotent=True)
        except NotFoundError:
            return None
        record = answer.get("instances")
        return record if isinstance(record, dict) else None

    def list_instances(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/instances/", idempotent=True)
        rows = answer.get("instances")
        return rows if isinstance(rows, list) else []

    def set_label(self, instance_id: int, label: str) -> None:
        self._call("PUT", f"/instances/{int(instance_id)}/", json={"label": label}, idempotent=True)

    def set_state(self, instance_id: int, state: str) -> None:
        """state: "running" or "stopped"."""
        self._call("PUT", f"/instances/{int(instance_id)}/", json={"state": state}, idempotent=True)

    def destroy_instance(self, instance_id: int) -> bool:
        """DELETE the instance; False when it was already gone (which is success too)."""
        try:
            self._call("DELETE", f"/instances/{int(instance_id)}/", json={}, idempotent=True)
        except NotFoundError:
            return False
        return True

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """POST /instances/{id}/ssh/: attaching the same key twice is harmless, so retried."""
        self._call(
            "POST", f"/instances/{int(instance_id)}/ssh/", json={"ssh_key": public_key},
            idempotent=True,
        )

    # -- account ------------------------------------------------------------------------------

    def current_user(self) -> dict[str, Any]:
        """GET /users/current/ (no query parameters: Vast rejects them there)."""
        return self._call("GET", "/users/current/", idempotent=True)

    def list_ssh_keys(self) -> list[dict[str, Any]]:
        """Account keys; Vast answers a bare list or {"ssh_keys": [...]}; deleted rows dropped."""
        answer: Any = self._call("GET", "/ssh/", idempotent=True)
        rows = answer.get("ssh_keys", []) if isinstance(answer, dict) else answer
        return [r for r in rows if isinstance(r, dict) and not r.get("deleted_at")]

    # -- the one boundary ---------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, json: Any = None, idempotent: bool
    ) -> dict[str, Any]:
        full_path = _path(path)
        attempts = self._retry.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, full_path, json)
            except (RateLimitedError, ServerError, TransportError) as exc:
                if attempt == attempts:
                    raise
                delay = self._retry.delay(attempt)
                log.info("%s; retry %d/%d in %.1f s", exc, attempt, attempts - 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, full_path: str, json: Any) -> dict[str, Any]:
        self.calls += 1
        log.debug("%s %s", method, full_path)
        try:
            resp = self._session.request(
                method, self._base + full_path, json=json, timeout=self._timeout
            )
        except requests.Timeout as exc:
            raise TransportError(method, full_path, None, "timeout", type(exc).__name__) from exc
        except requests.RequestException as exc:
            raise TransportError(method, full_path, None, "connection", _describe(exc)) from exc
        body = _json_or_none(resp)
        if resp.status_code >= 400 or (isinstance(body, dict) and body.get("success") is False):
            raise error_for(method, full_path, resp.status_code, body, resp.text)
        if body is None:
            raise ApiError(method, full_path, resp.status_code, None, "answer is not JSON")
        return body


def error_for(
    method: str, path: str, status: int, body: Any, text: str
) -> ApiError:
    """Map one failed answer to the most specific class of the providers.errors tree."""
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    msg = _msg_of(body) if isinstance(body, dict) else text
    both = f"{error} {msg or ''}".lower()
    args = (method, path, status, error or None, msg)
    if status in (401, 403) or error == "auth_error":
        return AuthError(*args)
    if 400 <= status < 500 and any(m in both for m in _OFFER_GONE_MARKERS):
        return OfferGoneError(*args)
    if status == 404 or error in _NOT_FOUND_ERRORS:
        return NotFoundError(*args)
    if status == 429:
        return RateLimitedError(*args)
    if status >= 500:
        return ServerError(*args)
    return ApiError(*args)


def _path(path: str) -> str:
    return API_PREFIX + path


def _msg_of(body: Mapping[str, Any]) -> str | None:
    for key in ("msg", "message", "detail"):
        if body.get(key):
            return str(body[key])
    return None


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _describe(exc: requests.RequestException) -> str:
    """The exception's class and the innermost reason, without the URL (it names the host)."""
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    return f"{type(exc).__name__}: {type(inner).__name__}"
