"""The HTTP side: vast.ai's REST routes (``/api/v0/...``) and vastsim's admin ones (``/_sim/...``).

Every ``/api/`` request goes: route lookup (unknown -> 404, recorded as unexpected), request
faults (slow, 429, 5xx), auth, handler. Paths match with or without a trailing slash. Keys come
from ``Authorization: Bearer KEY`` or ``?api_key=KEY``. The account key may do everything; an
instance's ``CONTAINER_API_KEY`` may only show, start/stop/label and destroy that instance.
Search works without any key, as on vast.ai (a wrong key is still refused).

Admin routes need no key and never fault:

===============================  =============================================================
``GET  /_sim/health``            ``{"ok": true, "url": ...}``
``GET  /_sim/ledger``            per-instance seconds and dollars, ``billing_now``, total
``GET  /_sim/faults``            pending faults with their remaining counts
``POST /_sim/faults``            add faults (one spec, a list, or ``{"faults": [...]}``)
``DELETE /_sim/faults``          drop every pending fault
``GET  /_sim/instances``         what the API hides: pid, port, root dir, host key, phase
``POST /_sim/instances/ID/kill`` ``{"status": "offline"|"exited", "status_msg": ...}``
``GET  /_sim/unexpected``        requests that matched no route
``GET  /_sim/requests``          the last requests: method, path, status, fault
``POST /_sim/seed``              ``{"count": N, "status": ..., "label": ...}``: N foreign
                                 instances (not ours, no sshd; vastsim/seed.py)
``POST /_sim/outbid``            ``{"id": N}`` (or ``{}``: every running bid instance): a higher
                                 bid takes the machine (vastsim/bids.py)
``POST /_sim/busy``              ``{"machine_id": M}`` or ``{"offer_id": O}``, ``"busy":
                                 true|false``: that machine's GPUs are (no longer) taken
===============================  =============================================================

``/_s3/instance_logs/NAME.log`` is the object store a logs ``result_url`` points into
(vastsim/logs.py): no key, 404 until the result is uploaded.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vastsim import listing
from vastsim.cloud import Cloud
from vastsim.errors import ApiError
from vastsim.faults import FaultSpecError
from vastsim.logs import PREFIX

log = logging.getLogger(__name__)

RATE_LIMIT_TEXT = "API requests too frequent"
RATE_LIMIT_JSON = {"detail": "API requests too frequent endpoint threshold=1.0"}
QUOTA_JSON = {"success": False, "error": "search_quota_exceeded",
              "msg": "Daily search quota exceeded; it resets at 00:00 UTC."}
NGINX_PAGE = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
              "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
           504: "Gateway Time-out"}

# How a key may be used on a route: "any" (search: no key needed), "account" (account key
# only), "instance" (account key, or the key of the instance named in the path).
Route = tuple[str, re.Pattern[str], str, str]
ROUTES: list[Route] = [(m, re.compile(p + r"\Z"), name, auth) for m, p, name, auth in [
    ("POST", r"/api/v0/bundles", "search_post", "any"),
    ("GET", r"/api/v0/bundles", "search_get", "any"),
    ("PUT", r"/api/v0/search/asks", "search_asks", "any"),
    ("GET", r"/api/v0/gpu_names/unique", "gpu_names", "any"),
    ("PUT", r"/api/v0/asks/(\d+)", "rent", "account"),
    ("GET", r"/api/v0/instances", "list_instances", "account"),
    ("GET", r"/api/v1/instances", "list_v1", "account"),
    ("GET", r"/api/v0/instances/filters", "list_filters", "account"),
    ("GET", r"/api/v0/instances/(\d+)", "show", "instance"),
    ("PUT", r"/api/v0/instances/(\d+)", "manage", "instance"),
    ("DELETE", r"/api/v0/instances/(\d+)", "destroy", "instance"),
    ("PUT", r"/api/v0/instances/reboot/(\d+)", "reboot", "account"),
    ("PUT", r"/api/v0/instances/bid_price/(\d+)", "change_bid", "account"),
    ("PUT", r"/api/v0/instances/request_logs/(\d+)", "request_logs", "instance"),
    ("POST", r"/api/v0/instances/(\d+)/ssh", "attach", "account"),
    ("GET", r"/api/v0/ssh", "list_keys", "account"),
    ("POST", r"/api/v0/ssh", "create_key", "account"),
    ("PUT", r"/api/v0/ssh/(\d+)", "update_key", "account"),
    ("DELETE", r"/api/v0/ssh/(\d+)", "delete_key", "account"),
    ("GET", r"/api/v0/users/current", "user", "account"),
]]


class Answer:
    """A response to send: status, body bytes, content type, extra headers."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.content_type = content_type
        self.headers = headers or {}
        self.body = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())


class Api:
    """Route table + handlers over a Cloud; one instance serves every request thread."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud

    # --- entry point ---------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> Answer:
        url = urllib.parse.urlsplit(raw_path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/_sim"):
            return self._admin(method, path, body)
        if path.startswith(PREFIX):
            return self._object_store(method, path, raw_path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            answer, fault = self._api(method, path, raw_path, query, headers, body)
        except Exception as exc:  # a vastsim bug: answer it, keep serving, keep the traceback
            log.exception("%s %s failed", method, raw_path)
            answer, fault = Answer(500, {"success": False, "error": "server_error",
                                         "msg": f"vastsim: {type(exc).__name__}: {exc}"}), None
        with self.cloud.lock:
            self.cloud.requests.append({"time": time.time(), "method": method, "path": raw_path,
                                        "status": answer.status, "fault": fault})
        return answer

    def _api(self, method: str, path: str, raw_path: str, query: dict[str, list[str]],
             headers: Any, body: bytes) -> tuple[Answer, str | None]:
        route = self._route(method, path)
        if route is None:
            with self.cloud.lock:
                self.cloud.unexpected.append({"method": method, "path": raw_path,
                                              "time": time.time()})
                self.cloud.save()
            log.warning("unexpected request %s %s", method, raw_path)
            return Answer(404, {"detail": "Not Found"}), None
        name, args, auth = route
        early, after, fault = self._faults(method, path)
        if early is not None:
            return early, fault
        try:
            owner = self._auth(headers, query, auth)
            payload = self._json(body)
            answer = getattr(self, name)(*args, payload=payload, query=query, owner=owner)
        except ApiError as exc:
            answer = Answer(exc.status, exc.body)
        return (after or answer), fault

    @staticmethod
    def _route(method: str, path: str) -> tuple[str, list[int], str] | None:
        for m, pattern, name, auth in ROUTES:
            match = pattern.match(path)
            if match and m == method:
                return name, [int(g) for g in match.groups()], auth
        return None

    def _faults(self, method: str, path: str) -> tuple[Answer | None, Answer | None, str | None]:
        """(answer instead of the work, answer after the work, note for the request log)."""
        with self.cloud.lock:
            slow = self.cloud.faults.take_request("slow", method, path)
            limit = self.cloud.faults.take_request("rate_limit", method, path)
            error = None if limit else self.cloud.faults.take_request("server_error", method, path)
            bad = None if limit or error else self.cloud.faults.take_request("bad_answer", method,
                                                                             path)
            if slow or limit or error or bad:
                self.cloud.save()
        if slow:
            time.sleep(slow.delay_s)  # the fault *is* a late answer
        if limit:
            headers = ({"Retry-After": f"{limit.retry_after:g}"}
                       if limit.retry_after is not None else None)
            as_json = limit.body == "json" or (limit.body == "both" and limit.fired % 2 == 0)
            if limit.body == "quota":
                answer = Answer(429, QUOTA_JSON, headers=headers)
            elif as_json:
                answer = Answer(429, RATE_LIMIT_JSON, headers=headers)
            else:
                answer = Answer(429, RATE_LIMIT_TEXT, "text/plain; charset=utf-8", headers)
            return answer, None, "rate_limit"
        if bad:
            return Answer(200, bad.text.encode(), "application/json"), None, "bad_answer"
        if error:
            page = NGINX_PAGE.format(code=error.status, reason=REASONS[error.status])
            answer = Answer(error.status, page, "text/html")
            if error.after:
                return None, answer, f"server_error {error.status} after"
            return answer, None, f"server_error {error.status}"
        return None, None, "slow" if slow else None

    def _auth(self, headers: Any, query: dict[str, list[str]], auth: str) -> int | None:
        """None for the account key, an instance id for a CONTAINER_API_KEY; else raises."""
        key = None
        header = headers.get("Authorization") or ""
        if header.lower().startswith("bearer "):
            key = header[7:].strip()
        elif query.get("api_key"):
            key = query["api_key"][0]
        if not key:
            if auth == "any":
                return None
            raise ApiError.vast(401, "auth_error", "Invalid user key")
        owner = self.cloud.key_owner(key)
        if owner is not None and auth != "instance":
            raise ApiError.vast(401, "auth_error", "Invalid user key")
        return owner

    @staticmethod
    def _json(body: bytes) -> Any:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError.vast(400, "invalid_args", "Invalid args: body is not JSON") from None

    @staticmethod
    def _own(owner: int | None, instance_id: int) -> None:
        if owner is not None and owner != instance_id:
            raise ApiError.vast(403, "not_authorized",
                                f"This instance API key is only valid for instance {owner}.")

    # --- search --------------------------------------------------------------------------------

    def search_post(self, *, payload: Any, **_: Any) -> Answer:
        return Answer(200, {"offers": self.cloud.search(payload)})

    def search_get(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        raw = query.get("q", ["{}"])[0]
        try:
            q = json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError.vast(400, "invalid_args", "q is not valid JSON") from None
        return Answer(200, {"offers": self.cloud.search(q)})

    def search_asks(self, *, payload: Any, **_: Any) -> Answer:
        if not isinstance(payload, dict) or not isinstance(payload.get("q"), dict):
            raise ApiError.vast(400, "invalid_args",
                                "Invalid args: expected {\"select_cols\": [...], \"q\": {...}}")
        return Answer(200, {"success": True, "offers": self.cloud.search(payload["q"])})

    def gpu_names(self, **_: Any) -> Answer:
        """Every GPU model of the catalogue; vastai 1.9.1 asks it (no key) on every run."""
        with self.cloud.lock:
            names = self.cloud.catalogue.gpu_names()
        return Answer(200, {"gpu_names": names})

    # --- instances -----------------------------------------------------------------------------

    def rent(self, offer_id: int, *, payload: Any, **_: Any) -> Answer:
        return Answer(200, self.cloud.rent(offer_id, payload))

    def list_instances(self, **_: Any) -> Answer:
        """The v0 list: 410 for accounts opened after 2026-06-02 (vastsim/accounts.py)."""
        with self.cloud.lock:
            self.cloud.account.check_v0_list()
        rows = self.cloud.list_instances()
        return Answer(200, {"instances_found": len(rows), "instances": rows})

    def list_v1(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        """The paged list (vastsim/listing.py has the args and the answer)."""
        return Answer(200, listing.page(self.cloud.list_instances(), query))

    def list_filters(self, **_: Any) -> Answer:
        """What ``show instances`` offers to filter on: the distinct combinations present."""
        return Answer(200, {"success": True,
                            "filters": listing.filter_values(self.cloud.list_instances())})

    def show(self, instance_id: int, *, owner: int | None, **_: Any) -> Answer:
        if owner is not None and owner != instance_id:
            return Answer(200, {"instances": None})  # not visible to that key
        return Answer(200, {"instances": self.cloud.show(instance_id)})

    def manage(self, instance_id: int, *, payload: Any, owner: int | None, **_: Any) -> Answer:
        self._own(owner, instance_id)
        if not isinstance(payload, dict):
            raise ApiError.vast(400, "invalid_args", "Invalid args: body must be an object")
        with self.cloud.lock:
            self.cloud._live(instance_id)
        answer: dict[str, Any] = {"success": True}
        if "label" in payload:
            self.cloud.label(instance_id, payload["label"])
            answer["msg"] = f"label for {instance_id} set to {payload['label']!r}."
        if "state" in payload:
            self.cloud.set_state(instance_id, payload["state"])
        return Answer(200, answer)

    def destroy(self, instance_id: int, *, owner: int | None, **_: Any) -> Answer:
        self._own(owner, instance_id)
        self.cloud.destroy(instance_id)
        return Answer(200, {"success": True})

    def change_bid(self, instance_id: int, *, payload: Any, **_: Any) -> Answer:
        price = payload.get("price") if isinstance(payload, dict) else None
        self.cloud.change_bid(instance_id, price)
        return Answer(200, {"success": True})

    def reboot(self, instance_id: int, **_: Any) -> Answer:
        self.cloud.reboot(instance_id)
        return Answer(200, {"success": True})

    def request_logs(self, instance_id: int, *, payload: Any, owner: int | None,
                     **_: Any) -> Answer:
        self._own(owner, instance_id)
        spec = payload if isinstance(payload, dict) else {}
        try:
            tail = int(spec.get("tail") or 1000)
        except (TypeError, ValueError):
            raise ApiError.vast(400, "invalid_args", "tail must be a number") from None
        path = self.cloud.request_logs(instance_id, tail)
        return Answer(200, {"success": True, "result_url": self.cloud.url + path,
                            "msg": "Logs will be uploaded to the result_url shortly."})

    def _object_store(self, method: str, path: str, raw_path: str) -> Answer:
        """The bucket result_urls point into: no key, 404 (as S3 says it) until uploaded."""
        text = self.cloud.logs.fetch(path) if method == "GET" else None
        answer = (Answer(200, text, "text/plain") if text is not None else
                  Answer(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml"))
        with self.cloud.lock:
            self.cloud.requests.append({"time": time.time(), "method": method, "path": raw_path,
                                        "status": answer.status, "fault": None})
        return answer

    def attach(self, instance_id: int, *, payload: Any, **_: Any) -> Answer:
        key = payload.get("ssh_key") if isinstance(payload, dict) else None
        self.cloud.attach_key(instance_id, key)
        return Answer(200, {"success": True, "msg": "SSH key attached successfully"})

    # --- account -------------------------------------------------------------------------------

    def list_keys(self, **_: Any) -> Answer:
        with self.cloud.lock:
            return Answer(200, self.cloud.account.live_keys())

    def create_key(self, *, payload: Any, **_: Any) -> Answer:
        key = payload.get("ssh_key") if isinstance(payload, dict) else None
        return Answer(200, {"success": True, "key": self.cloud.add_ssh_key(key)})

    def update_key(self, key_id: int, *, payload: Any, **_: Any) -> Answer:
        key = payload.get("ssh_key") if isinstance(payload, dict) else None
        return Answer(200, {"success": True, "key": self.cloud.update_ssh_key(key_id, key)})

    def delete_key(self, key_id: int, **_: Any) -> Answer:
        self.cloud.delete_ssh_key(key_id)
        return Answer(200, {"success": True})

    def user(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        extra = sorted(set(query) - {"api_key"})
        if extra:  # vast.ai rejects them since 2026-04-29 (vast-cli issue #382)
            raise ApiError.vast(400, "invalid_args",
                                "; ".join(f"{k}: Extra inputs are not permitted" for k in extra))
        return Answer(200, self.cloud.user())

    # --- admin ---------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> Answer:
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/_sim/health"): lambda: {"ok": True, "url": self.cloud.url},
            ("GET", "/_sim/ledger"): self.cloud.ledger,
            ("GET", "/_sim/faults"): lambda: {"faults": self.cloud.faults.to_json()},
            ("POST", "/_sim/faults"): lambda: self._add_faults(body),
            ("DELETE", "/_sim/faults"): self._clear_faults,
            ("GET", "/_sim/instances"): lambda: {"instances": self.cloud.internals()},
            ("GET", "/_sim/unexpected"): lambda: {"unexpected": list(self.cloud.unexpected)},
            ("GET", "/_sim/requests"): lambda: {"requests": list(self.cloud.requests)},
            ("POST", "/_sim/seed"): lambda: {"seeded": self.cloud.seed(self._json(body))},
            ("POST", "/_sim/outbid"): lambda: {"outbid": self.cloud.outbid(self._json(body))},
            ("POST", "/_sim/busy"): lambda: self.cloud.set_busy(self._json(body)),
        }
        try:
            kill = re.fullmatch(r"/_sim/instances/(\d+)/kill", path)
            if method == "POST" and kill:
                spec = self._json(body)
                spec = spec if isinstance(spec, dict) else {}
                self.cloud.kill(int(kill.group(1)), spec.get("status", "offline"),
                                spec.get("status_msg"))
                return Answer(200, {"success": True})
            handler = routes.get((method, path))
            if handler is None:
                return Answer(404, {"error": f"no admin route {method} {path}"})
            return Answer(200, handler())
        except ApiError as exc:
            return Answer(exc.status, exc.body)
        except FaultSpecError as exc:
            return Answer(400, {"error": str(exc)})

    def _add_faults(self, body: bytes) -> dict[str, Any]:
        with self.cloud.lock:
            added = self.cloud.faults.add(self._json(body))
            self.cloud.save()
            return {"added": [f.to_json() for f in added]}

    def _clear_faults(self) -> dict[str, Any]:
        with self.cloud.lock:
            self.cloud.faults.clear()
            self.cloud.save()
            return {"faults": []}


class Handler(BaseHTTPRequestHandler):
    """Thin stdlib adapter: read the body, ask Api, write the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    api: Api  # set on the subclass made by make_server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.api.handle(self.command, self.path, self.headers, body)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def make_server(cloud: Cloud, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A threading HTTP server for ``cloud`` (not started)."""
    handler = type("VastSimHandler", (Handler,), {"api": Api(cloud)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
