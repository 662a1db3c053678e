"""Instance logs as vast.ai hands them out: ``PUT /api/v0/instances/request_logs/ID/`` answers
a ``result_url`` on an object store outside the API (no key, a random name that is neither the
key nor derived from it), which answers 404 until the upload is done and then the text.

vastsim serves that store under ``/_s3/instance_logs/<name>.log``; a result is ready
``READY_AFTER_S`` after the request and holds the last ``tail`` lines as they were then.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

READY_AFTER_S = 0.5
PREFIX = "/_s3/instance_logs/"


class LogStore:
    """The uploaded results, by name; thread-safe."""

    def __init__(self, ready_after_s: float = READY_AFTER_S) -> None:
        self._ready_after_s = ready_after_s
        self._lock = threading.Lock()
        self._results: dict[str, tuple[float, Path, int]] = {}

    def request(self, log_file: Path, tail: int) -> str:
        """The path (under PREFIX) where the last `tail` lines of log_file will appear."""
        name = secrets.token_hex(16)
        with self._lock:
            self._results[name] = (time.monotonic() + self._ready_after_s, log_file, tail)
        return f"{PREFIX}{name}.log"

    def fetch(self, path: str) -> str | None:
        """The text at that path, or None while it is not uploaded (or never was)."""
        name = path.removeprefix(PREFIX).removesuffix(".log")
        with self._lock:
            result = self._results.get(name)
        if result is None or time.monotonic() < result[0]:
            return None
        _, log_file, tail = result
        try:
            lines = log_file.read_text(errors="replace").splitlines(keepends=True)
        except FileNotFoundError:
            lines = []
        return "".join(lines[-tail:] if tail > 0 else lines)
