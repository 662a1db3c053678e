"""The exception tree of vastsim (the SSH side has its own, ``vastsim.sshhost.SshHostError``).

::

    VastSimError(Exception)          base of everything vastsim raises on purpose
    ├── ApiError(VastSimError)       an answer the API gives instead of success:
    │                                .status (HTTP code) and .body (the JSON vast.ai would send)
    └── StateError(VastSimError)     the state dir cannot be read or written; names the file

Handlers raise ``ApiError`` anywhere below the HTTP layer; ``vastsim.api`` turns it into the
response at one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class VastSimError(Exception):
    """Base of every error vastsim raises on purpose."""


class ApiError(VastSimError):
    """An error answer: HTTP ``status`` with JSON ``body`` shaped the way vast.ai shapes it."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body}")

    @classmethod
    def vast(cls, status: int, error: str, msg: str, **extra: Any) -> ApiError:
        """The usual vast.ai error: ``{"success": false, "error": ..., "msg": ...}``."""
        return cls(status, {"success": False, "error": error, "msg": msg, **extra})


class StateError(VastSimError):
    """The state file is unreadable or unwritable."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"state file {path}: {reason}")
