"""Run vastsim as a subprocess for tests: ``with VastSim(state_dir) as sim: ...``.

It runs ``python -m vastsim serve --port 0 --state-dir DIR --boot-seconds 0`` (plus any extra
flags), reads ``VAST_URL=``/``VAST_API_KEY=`` from its output, and on exit sends SIGINT and
waits, so every instance's sshd is stopped and the state saved. ``restart()`` does the same
and starts again on the same state dir (a new port: clients must re-read ``.url``).
Its output goes to ``DIR/vastsim.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


class VastSimStartError(RuntimeError):
    """vastsim exited or printed no URL in time; the message holds its log."""


class VastSim:
    """A vastsim subprocess with helpers for its admin API."""

    def __init__(self, state_dir: Path, *, boot_seconds: float = 0.0,
                 faults: list[dict[str, Any]] | None = None, api_key: str | None = None,
                 account_created: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.state_dir = Path(state_dir)
        self.boot_seconds = boot_seconds
        self.faults = faults
        self.api_key_arg = api_key
        self.account_created = account_created  # "YYYY-MM-DD"; None: a new account
        self.extra_args = extra_args
        self.log_path = self.state_dir / "vastsim.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.api_key = ""
        self._faults_sent = False

    # --- process -------------------------------------------------------------------------------

    def start(self) -> VastSim:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "vastsim", "serve", "--port", "0",
                "--state-dir", str(self.state_dir), "--boot-seconds", str(self.boot_seconds),
                *self.extra_args]
        if self.faults is not None and not self._faults_sent:  # a restart keeps them in state
            self._faults_sent = True
            faults_file = self.state_dir / "faults.json"
            faults_file.write_text(json.dumps(self.faults), encoding="utf-8")
            argv += ["--faults", str(faults_file)]
        if self.api_key_arg:
            argv += ["--api-key", self.api_key_arg]
        if self.account_created:
            argv += ["--account-created", self.account_created]
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_PARENT),
                                                           os.environ.get("PYTHONPATH")]))}
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env=env)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            found = dict(_assignments(self._log_text(offset)))
            if "VAST_URL" in found and "VAST_API_KEY" in found:
                self.url, self.api_key = found["VAST_URL"], found["VAST_API_KEY"]
                return self
            try:
                code = self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            raise VastSimStartError(f"vastsim exited with code {code} before printing its URL:"
                                    f"\n{self._log_text(offset)}")
        self.stop()
        raise VastSimStartError(f"vastsim printed no URL within {STARTUP_TIMEOUT_S} s:\n"
                                f"{self._log_text(offset)}")

    def stop(self) -> int | None:
        """SIGINT and wait (every sshd stopped, state saved); SIGKILL only after a timeout."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"vastsim ignored SIGINT for {SHUTDOWN_TIMEOUT_S} s; killed. "
                                   f"Log: {self.log_path}") from None
        return proc.returncode

    def restart(self) -> VastSim:
        """Stop and start again on the same state dir (the URL changes)."""
        self.stop()
        return self.start()

    def __enter__(self) -> VastSim:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @property
    def log(self) -> str:
        return self._log_text()

    # --- HTTP helpers --------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """The account's auth header, as the vast.ai CLI sends it."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def instances(self) -> list[dict[str, Any]]:
        """Every instance of the account, paging ``GET /api/v1/instances/`` as the CLI does."""
        rows: list[dict[str, Any]] = []
        params: dict[str, str] = {"select_filters": "{}", "limit": "25"}
        while True:
            r = requests.get(f"{self.url}/api/v1/instances/", params=params,
                             headers=self.headers, timeout=HTTP_TIMEOUT_S)
            r.raise_for_status()
            rows += r.json()["instances"]
            if not r.json()["next_token"]:
                return rows
            params["after_token"] = r.json()["next_token"]

    def seed(self, count: int, **spec: Any) -> list[int]:
        """Seed ``count`` foreign instances (``status=``, ``label=``); their ids."""
        return self.admin_post("/_sim/seed", {"count": count, **spec})["seeded"]

    def admin_get(self, path: str) -> Any:
        """GET an admin route (``/_sim/...``, the prefix may be left out); the JSON answer."""
        r = requests.get(self._admin_url(path), timeout=HTTP_TIMEOUT_S)
        r.raise_for_status()
        return r.json()

    def admin_post(self, path: str, json: Any = None) -> Any:
        r = requests.post(self._admin_url(path), json=json, timeout=HTTP_TIMEOUT_S)
        r.raise_for_status()
        return r.json()

    def add_faults(self, *faults: dict[str, Any]) -> Any:
        return self.admin_post("/_sim/faults", list(faults))

    def clear_faults(self) -> Any:
        r = requests.delete(f"{self.url}/_sim/faults", timeout=HTTP_TIMEOUT_S)
        r.raise_for_status()
        return r.json()

    def ledger(self) -> dict[str, Any]:
        return self.admin_get("/_sim/ledger")

    def billing_now(self) -> list[int]:
        """Ids of the instances accruing any charge right now."""
        return self.ledger()["billing_now"]

    def internals(self) -> list[dict[str, Any]]:
        return self.admin_get("/_sim/instances")["instances"]

    def unexpected(self) -> list[dict[str, Any]]:
        return self.admin_get("/_sim/unexpected")["unexpected"]

    def _admin_url(self, path: str) -> str:
        path = path if path.startswith("/") else "/" + path
        return self.url + (path if path.startswith("/_sim") else "/_sim" + path)


def _assignments(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("VAST_URL", "VAST_API_KEY"):
            out.append((key, value.strip()))
    return out
