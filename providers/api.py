"""VastClient: one method per vast.ai REST endpoint we use, and the one place HTTP happens.

Facts it encodes (docs/vast-api.md): the key goes in an ``Authorization: Bearer`` header, never
in a URL; the instance list is ``GET /api/v1/instances/``, paged by tokens (the v0 list answers
410 for accounts opened after 2026-06-02); a 429 may carry ``Retry-After`` and a daily search
quota 429 must not be retried; a bad key may come back as 404 with ``auth_error``; a destroyed
instance reads as ``{"instances": null}``; string fields may carry stray whitespace.

Retries: idempotent calls retry 429, 5xx and transport errors with jittered backoff (or the
server's ``Retry-After``). A rent is retried only when it certainly was not executed (a 429,
or a connection that never opened); an ambiguous failure is raised, and the caller looks the
instance up by its label instead of resending (lifecycle.py). Each retry is said through
``notify`` so the user sees why a call takes long.

requests' exceptions and HTTP statuses become providers.errors classes here and nowhere else.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import random
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from providers.errors import (
    ApiError,
    AuthError,
    NotFoundError,
    OfferGoneError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    TransportError,
)

V0 = "/api/v0"
LIST_PATH = "/api/v1/instances/"
LIST_PAGE_LIMIT = 25  # what the official CLI asks for, and the most v1 serves per page
LIST_MAX_PAGES = 2000  # a loop guard: 50,000 instances
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 6
BACKOFF_FIRST_S = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_MAX_S = 10.0
RETRY_AFTER_MAX_S = 60.0
LOGS_WAIT_S = 10.0
LOGS_POLL_S = 0.3
USER_AGENT = "vast-gpu/0.1"

_OFFER_GONE_MARKERS = ("no_such_ask", "no longer available", "not available")
_NOT_FOUND_ERRORS = frozenset({"no_such_instance", "not_found"})
_QUOTA_ERRORS = frozenset({"search_quota_exceeded"})
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)

Notify = Callable[[str], None]


def stderr_notify(line: str) -> None:
    """The default: a progress line on stderr; a closed or broken stderr is not our failure."""
    with contextlib.suppress(OSError, ValueError):
        print(f"vast-gpu: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RetryPolicy:
    """How calls back off; tests shrink the delays, never the logic."""

    attempts: int = MAX_ATTEMPTS
    first_delay_s: float = BACKOFF_FIRST_S
    factor: float = BACKOFF_FACTOR
    max_delay_s: float = BACKOFF_MAX_S
    retry_after_max_s: float = RETRY_AFTER_MAX_S

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The server's Retry-After (capped) when it sent one, else exponential backoff with
        jitter, for the attempt-th retry (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max_s)
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
        notify: Notify = stderr_notify,
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
        self._notify = notify
        self.calls = 0
        """Requests sent, retries and pages included: the "API calls per create" figure."""

    def __repr__(self) -> str:  # never show the key, even in a debugger or a traceback
        return f"VastClient({self._base!r})"

    def close(self) -> None:
        self._session.close()

    # -- offers -------------------------------------------------------------------------------

    def search_offers(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        """POST /bundles/ with the JSON filter (read-only, so retried; a quota is not)."""
        answer = self._call("POST", V0 + "/bundles/", json=dict(query), idempotent=True)
        offers = answer.get("offers") if isinstance(answer, dict) else None
        if not isinstance(offers, list):
            raise ApiError("POST", V0 + "/bundles/", 200, None, "answer has no 'offers' list")
        return [_stripped(o) for o in offers if isinstance(o, dict)]

    def rent(self, offer_id: int, body: Mapping[str, Any]) -> int:
        """PUT /asks/{id}/: rent the offer; the new instance id. Resent only when the first
        try certainly did not reach the service (429, connection never opened)."""
        path = f"{V0}/asks/{int(offer_id)}/"
        answer = self._call("PUT", path, json=dict(body), idempotent=False)
        contract = answer.get("new_contract") if isinstance(answer, dict) else None
        if not isinstance(contract, int) or isinstance(contract, bool):
            raise ApiError("PUT", path, 200, None, "answer has no new_contract id")
        return contract

    # -- instances ----------------------------------------------------------------------------

    def show_instance(self, instance_id: int) -> dict[str, Any] | None:
        """The instance record, or None once it is gone ({"instances": null} or 404)."""
        path = f"{V0}/instances/{int(instance_id)}/"
        try:
            answer = self._call("GET", path, params={"owner": "me"}, idempotent=True)
        except NotFoundError:
            return None
        record = answer.get("instances") if isinstance(answer, dict) else None
        if record is None:
            return None
        if not isinstance(record, dict) or "id" not in record:
            raise ApiError("GET", path, 200, None, "answer is not an instance record")
        return _stripped(record)

    def list_instances(self) -> list[dict[str, Any]]:
        """Every instance of the account, paging GET /api/v1/instances/ to the last token.

        Anything but a well-formed page is an ApiError naming the endpoint, never an empty
        list: "nothing is ours" decided from a bad answer is how instances are lost.
        """
        rows: list[dict[str, Any]] = []
        params: dict[str, str] = {
            "select_filters": "{}",
            "order_by": jsonlib.dumps([{"col": "id", "dir": "asc"}]),
            "limit": str(LIST_PAGE_LIMIT),
        }
        seen_tokens: set[str] = set()
        for _ in range(LIST_MAX_PAGES):
            answer = self._call("GET", LIST_PATH, params=params, idempotent=True)
            page = answer.get("instances") if isinstance(answer, dict) else None
            if not isinstance(page, list) or not all(
                isinstance(r, dict) and isinstance(r.get("id"), int) for r in page
            ):
                raise ApiError("GET", LIST_PATH, 200, None,
                               "answer has no 'instances' list of instance records")
            rows += [_stripped(r) for r in page]
            token = answer.get("next_token")
            if not token:
                return rows
            if not isinstance(token, str) or token in seen_tokens:
                raise ApiError("GET", LIST_PATH, 200, None,
                               f"next_token {token!r} repeats or is not text: paging would loop")
            seen_tokens.add(token)
            params["after_token"] = token
        raise ApiError("GET", LIST_PATH, 200, None, f"more than {LIST_MAX_PAGES} pages")

    def set_label(self, instance_id: int, label: str) -> None:
        self._call("PUT", f"{V0}/instances/{int(instance_id)}/", json={"label": label},
                   idempotent=True)

    def set_state(self, instance_id: int, state: str) -> None:
        """state: "running" or "stopped"."""
        self._call("PUT", f"{V0}/instances/{int(instance_id)}/", json={"state": state},
                   idempotent=True)

    def destroy_instance(self, instance_id: int) -> bool:
        """DELETE the instance; False when it was already gone (which is success too)."""
        try:
            self._call("DELETE", f"{V0}/instances/{int(instance_id)}/", json={},
                       idempotent=True)
        except NotFoundError:
            return False
        return True

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """POST /instances/{id}/ssh/: attaching the same key twice is harmless, so retried."""
        self._call("POST", f"{V0}/instances/{int(instance_id)}/ssh/",
                   json={"ssh_key": public_key}, idempotent=True)

    def instance_logs(self, instance_id: int, *, tail: int = 200,
                      wait_s: float = LOGS_WAIT_S) -> str:
        """The instance's log text (its container and onstart output), last `tail` lines.

        vast.ai answers the request with a ``result_url`` that serves the text once it is
        ready (404 until then), as the CLI's ``logs`` polls it. That URL is outside the API
        and gets no Authorization header.
        """
        path = f"{V0}/instances/request_logs/{int(instance_id)}/"
        answer = self._call("PUT", path, json={"tail": str(int(tail))}, idempotent=True)
        url = answer.get("result_url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError("PUT", path, 200, None, "answer has no result_url")
        where = urlsplit(url)._replace(query="", fragment="").geturl()  # no signature shown
        deadline = time.monotonic() + wait_s
        while True:
            self.calls += 1
            try:
                resp = requests.get(url, timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                raise TransportError("GET", where, None, "connection", _describe(exc)) from exc
            if resp.status_code == 200:
                return resp.text
            if resp.status_code not in (403, 404) or time.monotonic() >= deadline:
                raise ApiError("GET", where, resp.status_code, None,
                               f"logs not ready after {wait_s:g} s")
            self._sleep(LOGS_POLL_S)

    # -- the one boundary ---------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> Any:
        attempts = self._retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, json, params)
            except QuotaExceededError:
                raise
            except (RateLimitedError, ServerError, TransportError) as exc:
                certain_unsent = isinstance(exc, RateLimitedError) or (
                    isinstance(exc, TransportError) and exc.sent is False)
                if attempt == attempts or not (idempotent or certain_unsent):
                    raise
                delay = self._retry.delay(
                    attempt, exc.retry_after if isinstance(exc, RateLimitedError) else None)
                self._notify(f"{exc}; retry {attempt}/{attempts - 1} in {delay:.1f} s")
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, method: str, path: str, json: Any, params: Mapping[str, str] | None) -> Any:
        self.calls += 1
        try:
            resp = self._session.request(method, self._base + path, json=json, params=params,
                                         timeout=self._timeout)
        except requests.RequestException as exc:
            kind = "timeout" if isinstance(exc, requests.Timeout) else "connection"
            raise TransportError(method, path, None, kind, _describe(exc),
                                 sent=not _never_sent(exc)) from exc
        body = _json_or_none(resp)
        if resp.status_code >= 400 or (isinstance(body, dict) and body.get("success") is False):
            raise error_for(method, path, resp.status_code, body, resp.text,
                            retry_after=_retry_after(resp))
        if body is None:
            raise ApiError(method, path, resp.status_code, None, "answer is not JSON")
        return body


def error_for(
    method: str, path: str, status: int, body: Any, text: str, *,
    retry_after: float | None = None,
) -> ApiError:
    """Map one failed answer to the most specific class of the providers.errors tree."""
    error = str(body.get("error") or "") if isinstance(body, dict) else ""
    msg = _msg_of(body) if isinstance(body, dict) else _plain(text)
    both = f"{error} {msg or ''}".lower()
    args = (method, path, status, error or None, msg)
    if status in (401, 403) or error == "auth_error":
        return AuthError(*args)
    if status == 429 and error in _QUOTA_ERRORS:
        return QuotaExceededError(*args)
    if status == 429:
        return RateLimitedError(*args, retry_after=retry_after)
    if 400 <= status < 500 and any(m in both for m in _OFFER_GONE_MARKERS):
        return OfferGoneError(*args)
    if status == 404 or error in _NOT_FOUND_ERRORS:
        return NotFoundError(*args)
    if status >= 500:
        return ServerError(*args)
    return ApiError(*args)


def _stripped(value: Any) -> Any:
    """Whitespace stripped from every string, at any depth (as the official CLI does)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return {k: _stripped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stripped(v) for v in value]
    return value


def _retry_after(resp: requests.Response) -> float | None:
    """Retry-After in seconds when the server sent a number (an HTTP date is ignored)."""
    raw = resp.headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _never_sent(exc: BaseException) -> bool:
    """True when the connection was never opened (refused, connect timeout, DNS): the
    request cannot have reached the service, so even a rent may be sent again."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen or not isinstance(cur, BaseException):
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError | ConnectTimeoutError | requests.ConnectTimeout):
            return True
        todo += [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args]
    return False


def _plain(text: str) -> str:
    """A proxy's HTML error page reduced to its title (``502 Bad Gateway``), else the text."""
    title = _TITLE.search(text)
    return " ".join(title.group(1).split()) if title else text


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
