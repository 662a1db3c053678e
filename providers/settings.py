"""A stack's settings: the one table of keys, their defaults and rules, and the typed result.

Every consumer reads settings through ``parse_settings``: the Pulumi program (from
``pulumi.Config``), the provider's ``check`` and ``create`` (from the resource inputs, which
the program built from the same settings), and the workflow side (``inv search``, ``deploy``,
its dry run: from one ``pulumi config --json``). So a bad value gives the same ConfigError,
naming the key, the value and what is wrong, wherever it is read, and a new key is one row in
``KEYS`` plus one field of ``Settings``.

Values arrive as text (stack config) or typed (resource inputs); both parse the same way.
Zero is never silently a default: it is refused, or, for the dead-man switch's durations,
documented as "off". Secrets are refused as stack config (providers/credentials.py says why).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.runtime.rpc import UNKNOWN

from providers import settingvalues as read
from providers.credentials import REGISTRY_LOGIN_ENV
from providers.errors import ConfigError, QueryError
from providers.settingvalues import Parser
from remote.watchdog import MAX_ONSTART_CHARS, Deadman, onstart_with_watchdog

NAMESPACE = "vast-gpu"
DEFAULT_QUERY = (
    "reliability > 0.98 gpu_ram >= 20 compute_cap >= 700 inet_down >= 200 disk_space >= 50"
)
DEFAULT_ORDER = "dph+"
DEFAULT_DISK_GB = 60.0
DEFAULT_READY_TIMEOUT_S = 900.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_APP_DIR = "/app"
DEFAULT_WORK_DIR = "/work"
DEFAULT_MAX_LIFETIME_S = 12 * 3600
DEFAULT_IDLE_TIMEOUT_S = 30 * 60
DEFAULT_LEASE_TIMEOUT_S = 10 * 60
DEFAULT_EXPECTED_HOURS = 1.0
DEFAULT_EXPECTED_SYNC_GB = 1.0
DEFAULT_EXPECTED_PULL_GB = 1.0
MIN_DISK_GB = 8.0  # vast.ai's minimum
BID_RANGE = (0.001, 128.0)  # $/h accepted by vast.ai for an interruptible bid
MAX_COUNT = 16


@dataclass(frozen=True)
class Key:
    """One stack key: its name after ``vast-gpu:``, how a value is read and checked, its
    default (None: unset means "none"), and what it does to a running instance."""

    name: str
    attr: str
    parse: Parser
    default: Any = None
    instance: bool = True
    """An input of each VastInstance (else a stack-wide setting)."""
    replace: bool = False
    """A change needs a new machine (else it is changed in place, or needs none)."""
    forbidden: str | None = None
    """Why this key may not be set as stack config, and what to do instead."""


_STATE_NOTE = ("stack config is recorded, encrypted, in the stack's Pulumi state (the inputs of "
               "the pulumi-python provider), its history and backups")
KEYS: tuple[Key, ...] = (
    Key("image", "image", read.image, replace=True),
    Key("disk", "disk_gb", read.at_least(MIN_DISK_GB, "a number of GB"), DEFAULT_DISK_GB,
        replace=True),
    Key("query", "query", read.query, DEFAULT_QUERY, replace=True),
    Key("order", "order", read.order, DEFAULT_ORDER, replace=True),
    Key("maxPricePerHour", "max_price", read.at_least(0, "a price in $/h", strict=True)),
    Key("bidPrice", "bid_price", read.between(*BID_RANGE, "a bid in $/h"), replace=True),
    Key("onstart", "onstart", read.text, replace=True),
    Key("env", "env", read.env, {}, replace=True),
    Key("label", "label", read.label),
    Key("sshPublicKey", "ssh_public_key", read.text),
    Key("readyTimeout", "ready_timeout_s", read.at_least(0, "a number of seconds", strict=True),
        DEFAULT_READY_TIMEOUT_S),
    Key("maxAttempts", "max_attempts", read.at_least(1, "a whole number", read.whole),
        DEFAULT_MAX_ATTEMPTS),
    # the dead-man switch's settings are baked into onstart, which runs only at boot
    Key("maxLifetime", "max_lifetime_s", read.duration, DEFAULT_MAX_LIFETIME_S, replace=True),
    Key("idleTimeout", "idle_timeout_s", read.duration, DEFAULT_IDLE_TIMEOUT_S, replace=True),
    Key("leaseTimeout", "lease_timeout_s", read.duration, DEFAULT_LEASE_TIMEOUT_S, replace=True),
    Key("maxCost", "max_cost", read.at_least(0, "dollars (the whole run's cap)", strict=True)),
    Key("expectedHours", "expected_hours", read.at_least(0, "a number of hours", strict=True),
        DEFAULT_EXPECTED_HOURS),
    Key("expectedSyncGB", "expected_sync_gb", read.at_least(0, "a number of GB"),
        DEFAULT_EXPECTED_SYNC_GB),
    Key("expectedPullGB", "expected_pull_gb", read.at_least(0, "a number of GB"),
        DEFAULT_EXPECTED_PULL_GB),
    Key("count", "count", read.between(1, MAX_COUNT, "a whole number", read.whole), 1,
        instance=False),
    Key("appDir", "app_dir", read.remote_dir, DEFAULT_APP_DIR, instance=False),
    Key("workDir", "work_dir", read.remote_dir, DEFAULT_WORK_DIR, instance=False),
    Key("apiUrl", "api_url", read.url, instance=False),
    # the local tree `inv sync` and deploy upload; relative paths from stacks/ (workflow/source.py)
    Key("src", "src", read.text, instance=False),
    Key("apiKey", "", read.text, instance=False,
        forbidden=f"{_STATE_NOTE}; remove it (`pulumi config rm vast-gpu:apiKey`) and export "
                  "VAST_API_KEY or write ~/.config/vastai/vast_api_key"),
    Key("registryLogin", "", read.text, instance=False,
        forbidden=f"{_STATE_NOTE}; remove it (`pulumi config rm vast-gpu:registryLogin`) and "
                  f"export {REGISTRY_LOGIN_ENV}='-u USER -p TOKEN REGISTRY', or GHCR_TOKEN for a "
                  "ghcr.io image"),
)
BY_NAME: Mapping[str, Key] = {k.name: k for k in KEYS}
INSTANCE_KEYS: tuple[Key, ...] = tuple(k for k in KEYS if k.instance)
REPLACE_KEYS = frozenset(k.name for k in KEYS if k.replace)
"""A change of these needs a new machine; the other instance keys change in place."""


@dataclass(frozen=True)
class Settings:
    """A stack's settings, parsed and checked, every default filled in from KEYS; unset
    optional keys are None."""

    image: str
    disk_gb: float
    query: str
    order: str
    max_price: float | None
    bid_price: float | None
    onstart: str | None
    env: Mapping[str, str]
    label: str | None
    ssh_public_key: str | None
    ready_timeout_s: float
    max_attempts: int
    max_lifetime_s: int
    idle_timeout_s: int
    lease_timeout_s: int
    max_cost: float | None
    expected_hours: float
    expected_sync_gb: float
    expected_pull_gb: float
    count: int
    app_dir: str
    work_dir: str
    api_url: str | None
    src: str | None

    @property
    def deadman(self) -> Deadman:
        return Deadman(max_lifetime_s=self.max_lifetime_s, idle_timeout_s=self.idle_timeout_s,
                       lease_timeout_s=self.lease_timeout_s)

    @property
    def offer_type(self) -> str:
        return "bid" if self.bid_price is not None else "on-demand"

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (e.g. a dry run's --hours), checked again."""
        raw = {k.name: getattr(self, k.attr) for k in KEYS if k.attr}
        raw.update({BY_ATTR[a].name: v for a, v in changes.items()})
        return parse_settings(raw)

    def instance_inputs(self) -> dict[str, Any]:
        """The inputs of one VastInstance: every instance key that is set (the engine reads
        None as unknown, so unset keys are left out)."""
        out: dict[str, Any] = {}
        for key in INSTANCE_KEYS:
            value = getattr(self, key.attr)
            if value is not None:
                out[key.name] = dict(value) if isinstance(value, Mapping) else value
        return out


BY_ATTR: Mapping[str, Key] = {k.attr: k for k in KEYS if k.attr}


def _bare(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(f"{NAMESPACE}:") else name


def problems(raw: Mapping[str, Any], *, unknown: str = "error") -> list[ConfigError]:
    """Every bad value in ``raw`` (keys bare or ``vast-gpu:``-prefixed), as ConfigErrors.

    ``unknown="error"`` refuses keys the table does not know (a typo would be ignored
    silently otherwise); ``"ignore"`` skips them (resource inputs also hold outputs). Values
    Pulumi does not know yet (preview) are not judged; an empty text counts as unset.
    """
    return _parse(raw, unknown)[1]


def parse_settings(raw: Mapping[str, Any], *, unknown: str = "error") -> Settings:
    """``raw`` -> Settings; the first problem (see ``problems``) is raised as ConfigError."""
    values, errors = _parse(raw, unknown)
    if errors:
        raise errors[0]
    for key in KEYS:
        if key.attr and key.attr not in values:
            default = key.default
            values[key.attr] = dict(default) if isinstance(default, Mapping) else default
    return Settings(**values)


def _parse(raw: Mapping[str, Any], unknown: str) -> tuple[dict[str, Any], list[ConfigError]]:
    values: dict[str, Any] = {}
    errors: list[ConfigError] = []
    pending: set[str] = set()
    for name, value in raw.items():
        bare = _bare(name)
        key = BY_NAME.get(bare)
        if key is None:
            if unknown == "error":
                errors.append(ConfigError(f"{NAMESPACE}:{bare}", value, _unknown_reason(bare)))
            continue
        if value == UNKNOWN:
            pending.add(key.name)
            continue
        if value is None or value == "":
            continue
        if key.forbidden:
            errors.append(ConfigError(f"{NAMESPACE}:{bare}", "<not shown>", key.forbidden))
            continue
        try:
            values[key.attr] = key.parse(value)
        except QueryError as exc:
            errors.append(exc)
        except ValueError as exc:
            errors.append(ConfigError(f"{NAMESPACE}:{bare}", value, str(exc)))
    if "image" not in values and "image" not in pending and not any(
        e.key == f"{NAMESPACE}:image" for e in errors
    ):
        errors.append(ConfigError(
            f"{NAMESPACE}:image", None,
            "required: the Docker image to run, e.g. `pulumi config set vast-gpu:image "
            "pytorch/pytorch`"))
    if not pending & {"onstart", "maxLifetime", "idleTimeout", "leaseTimeout"}:
        errors += _onstart_room(values)
    return values, errors


def _onstart_room(values: Mapping[str, Any]) -> list[ConfigError]:
    """vast.ai takes 4096 characters of onstart; the watchdog's installer uses part of it."""
    onstart = values.get("onstart")
    if not isinstance(onstart, str):
        return []
    deadman = Deadman(
        max_lifetime_s=values.get("max_lifetime_s", DEFAULT_MAX_LIFETIME_S),
        idle_timeout_s=values.get("idle_timeout_s", DEFAULT_IDLE_TIMEOUT_S),
        lease_timeout_s=values.get("lease_timeout_s", DEFAULT_LEASE_TIMEOUT_S),
    )
    full = onstart_with_watchdog(onstart, deadman) or ""
    if len(full) <= MAX_ONSTART_CHARS:
        return []
    used = len(full) - len(onstart)
    reason = (f"{len(onstart)} characters; at most {MAX_ONSTART_CHARS - used} fit: vast.ai takes "
              f"{MAX_ONSTART_CHARS} and the dead-man switch's installer uses {used}")
    return [ConfigError(f"{NAMESPACE}:onstart", f"<{len(onstart)} characters>", reason)]


def _unknown_reason(name: str) -> str:
    close = difflib.get_close_matches(name, [k.name for k in KEYS if not k.forbidden], n=1)
    hint = f"did you mean {NAMESPACE}:{close[0]}? " if close else ""
    return f"unknown setting; {hint}known: {', '.join(k.name for k in KEYS if not k.forbidden)}"


def from_program_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The raw mapping from the program's config (``pulumi.runtime.config.CONFIG.get()``:
    every ``ns:key`` -> text, objects as JSON text): our namespace only."""
    return {k: v for k, v in config.items() if k.startswith(f"{NAMESPACE}:")}


def from_config_json(config: Mapping[str, Any]) -> dict[str, Any]:
    """The raw mapping from ``pulumi config --json`` (secrets unread: only their presence)."""
    out: dict[str, Any] = {}
    for name, entry in config.items():
        if not name.startswith(f"{NAMESPACE}:") or not isinstance(entry, Mapping):
            continue
        if entry.get("secret"):
            out[name] = "<secret>"
        elif "objectValue" in entry:
            out[name] = entry["objectValue"]
        else:
            out[name] = entry.get("value")
    return out


__all__ = [
    "BY_NAME",
    "DEFAULT_APP_DIR",
    "DEFAULT_DISK_GB",
    "DEFAULT_ORDER",
    "DEFAULT_QUERY",
    "DEFAULT_WORK_DIR",
    "INSTANCE_KEYS",
    "KEYS",
    "NAMESPACE",
    "REPLACE_KEYS",
    "Key",
    "Settings",
    "from_config_json",
    "from_program_config",
    "parse_settings",
    "problems",
]
