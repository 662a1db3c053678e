"""The account: when it was opened (which decides what the API serves it) and its SSH keys.

vast.ai retired the v0 instance list for new accounts: ``GET /api/v0/instances/`` answers 410
``deprecated_endpoint`` to every account created after 2026-06-02 (vast-api.md "Instances").
vastsim plays a new account unless told the account is older (``--account-created``).

Account SSH keys are soft-deleted, as vast.ai reports them (``deleted_at`` set), but
``GET /api/v0/ssh/`` lists only the live ones (issue 9) and only live keys go into new
instances.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from vastsim.errors import ApiError

USER_ID = 424242
V0_LIST_CUTOFF = datetime.date(2026, 6, 2)  # accounts created after it get the 410
DEPRECATED_V0_LIST = ApiError.vast(
    410, "deprecated_endpoint",
    "Endpoint deprecated: /api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.")


def parse_date(text: str) -> datetime.date:
    """``YYYY-MM-DD`` -> date; ValueError names the expected form."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"account creation date must be YYYY-MM-DD, got {text!r}") from None


def default_created() -> datetime.date:
    """Today, but never on or before the cutoff: a fresh vastsim is a new account."""
    today = datetime.datetime.now(datetime.UTC).date()
    return max(today, V0_LIST_CUTOFF + datetime.timedelta(days=1))


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


class Account:
    """Creation date and SSH key rows; not thread-safe on its own (Cloud holds the lock)."""

    def __init__(self, created: datetime.date | None = None) -> None:
        self.created = created or default_created()
        self.ssh_keys: list[dict[str, Any]] = []
        self.next_key_id = 1

    @property
    def v0_list_allowed(self) -> bool:
        return self.created <= V0_LIST_CUTOFF

    def check_v0_list(self) -> None:
        if not self.v0_list_allowed:
            raise DEPRECATED_V0_LIST

    # --- persistence ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {"account_created": self.created.isoformat(), "ssh_keys": self.ssh_keys,
                "next_key_id": self.next_key_id}

    def restore(self, state: dict[str, Any], created: datetime.date | None) -> None:
        """From the state file; an explicit ``created`` (the flag) wins over the stored one."""
        self.ssh_keys = state["ssh_keys"]
        self.next_key_id = state["next_key_id"]
        stored = state.get("account_created")
        self.created = created or (parse_date(stored) if stored else default_created())

    # --- SSH keys ------------------------------------------------------------------------------

    def live_keys(self) -> list[dict[str, Any]]:
        return [dict(k) for k in self.ssh_keys if k["deleted_at"] is None]

    def add_key(self, key: Any) -> dict[str, Any]:
        key = _key_text(key)
        if any(k["public_key"] == key for k in self.live_keys()):
            raise ApiError.vast(400, "duplicate_ssh_key", "This SSH key already exists.")
        row = {"id": self.next_key_id, "user_id": USER_ID, "public_key": key,
               "created_at": timestamp(), "deleted_at": None}
        self.next_key_id += 1
        self.ssh_keys.append(row)
        return dict(row)

    def update_key(self, key_id: int, key: Any) -> dict[str, Any]:
        key = _key_text(key)
        row = self._row(key_id)
        row["public_key"] = key
        return dict(row)

    def delete_key(self, key_id: int) -> None:
        self._row(key_id)["deleted_at"] = timestamp()

    def _row(self, key_id: int) -> dict[str, Any]:
        for row in self.ssh_keys:
            if row["id"] == key_id and row["deleted_at"] is None:
                return row
        raise ApiError.vast(404, "no_such_ssh_key", f"SSH key {key_id} not found.")


def _key_text(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ApiError.vast(400, "no_ssh_key", "No ssh key provided")
    return key.strip()
