"""The stack's settings for VastInstance: read once, typed, validated, with named defaults.

Config flows one way: stack config (`vast-gpu:*`) -> InstanceArgs -> resource inputs ->
InstanceSpec for lifecycle.py. A bad value is an error that names the key and the value, at
`pulumi preview` already (the provider's `check` runs validate_inputs on the inputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pulumi
from pulumi.runtime.rpc import UNKNOWN

from providers.cost import (
    DEFAULT_EXPECTED_HOURS,
    DEFAULT_EXPECTED_PULL_GB,
    DEFAULT_EXPECTED_SYNC_GB,
)
from providers.errors import ConfigError, QueryError
from providers.lifecycle import InstanceSpec
from providers.query import parse_order, parse_query
from providers.settings import (
    CONFIG_NAMESPACE,
    DEFAULT_DISK_GB,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_LEASE_TIMEOUT_S,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_LIFETIME_S,
    DEFAULT_ORDER,
    DEFAULT_QUERY,
    DEFAULT_READY_TIMEOUT_S,
)
from remote.watchdog import MAX_ONSTART_CHARS, Deadman, onstart_with_watchdog, parse_duration

MIN_DISK_GB = 8  # vast.ai's minimum
MAX_LABEL_CHARS = 900  # vast.ai allows 1024; our tag takes the rest
BID_RANGE = (0.001, 128.0)  # $/h accepted by vast.ai for an interruptible bid
MAX_COUNT = 16

REPLACE_KEYS = frozenset(
    {"image", "disk", "query", "order", "onstart", "env", "bidPrice", "registryLogin",
     # the dead-man switch's settings are baked into onstart, which runs only at boot
     "maxLifetime", "idleTimeout", "leaseTimeout"}
)
"""A change of these needs a new machine; the label and SSH key are changed in place."""


@dataclass(frozen=True)
class InstanceArgs:
    """What one VastInstance is asked for (keys as in the stack config, Python names here)."""

    image: str
    disk: float = DEFAULT_DISK_GB
    query: str = DEFAULT_QUERY
    order: str = DEFAULT_ORDER
    max_price_per_hour: float | None = None
    onstart: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    label: str | None = None
    bid_price: float | None = None
    registry_login: str | None = None
    ssh_public_key: str | None = None
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_lifetime: int | None = None
    """Dead-man switch, in seconds (0 = off; None = the default): remote/watchdog.py."""
    idle_timeout: int | None = None
    lease_timeout: int | None = None
    max_cost: float | None = None
    expected_hours: float | None = None
    expected_sync_gb: float | None = None
    expected_pull_gb: float | None = None

    _INPUT_NAMES: ClassVar[dict[str, str]] = {
        "image": "image", "disk": "disk", "query": "query", "order": "order",
        "max_price_per_hour": "maxPricePerHour", "onstart": "onstart", "env": "env",
        "label": "label", "bid_price": "bidPrice", "registry_login": "registryLogin",
        "ssh_public_key": "sshPublicKey", "ready_timeout": "readyTimeout",
        "max_attempts": "maxAttempts",
        "max_lifetime": "maxLifetime", "idle_timeout": "idleTimeout",
        "lease_timeout": "leaseTimeout",
        "max_cost": "maxCost", "expected_hours": "expectedHours",
        "expected_sync_gb": "expectedSyncGB", "expected_pull_gb": "expectedPullGB",
    }

    def to_inputs(self) -> dict[str, Any]:
        """Resource inputs; None is left out (the engine would read it as 'unknown')."""
        out = {}
        for attr, key in self._INPUT_NAMES.items():
            value = getattr(self, attr)
            if value is not None:
                out[key] = dict(value) if attr == "env" else value
        return out


INPUT_KEYS = frozenset(InstanceArgs._INPUT_NAMES.values()) | {"tag"}
"""The inputs diff compares: ours only, so a change of the provider's code alone is none."""


def spec_from_inputs(props: Mapping[str, Any]) -> InstanceSpec:
    """The lifecycle's view of checked resource inputs (check added tag and the key pair)."""
    return InstanceSpec(
        image=props["image"],
        disk_gb=float(props.get("disk", DEFAULT_DISK_GB)),
        query=props.get("query", DEFAULT_QUERY),
        order=props.get("order", DEFAULT_ORDER),
        tag=props["tag"],
        ssh_public_key=props.get("sshPublicKey") or "",
        ready_timeout_s=float(props.get("readyTimeout", DEFAULT_READY_TIMEOUT_S)),
        max_attempts=int(props.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)),
        max_price=props.get("maxPricePerHour"),
        bid_price=props.get("bidPrice"),
        onstart=onstart_with_watchdog(props.get("onstart"), deadman_from_inputs(props)),
        env=dict(props.get("env") or {}),
        image_login=props.get("registryLogin"),
        user_label=props.get("label"),
        max_cost=props.get("maxCost"),
        expected_hours=float(props.get("expectedHours", DEFAULT_EXPECTED_HOURS)),
        expected_sync_gb=float(props.get("expectedSyncGB", DEFAULT_EXPECTED_SYNC_GB)),
        expected_pull_gb=float(props.get("expectedPullGB", DEFAULT_EXPECTED_PULL_GB)),
    )


def deadman_from_inputs(props: Mapping[str, Any]) -> Deadman:
    """The watchdog's triggers from the inputs; a key left unset gets its default."""
    return Deadman(
        max_lifetime_s=int(props.get("maxLifetime", DEFAULT_MAX_LIFETIME_S)),
        idle_timeout_s=int(props.get("idleTimeout", DEFAULT_IDLE_TIMEOUT_S)),
        lease_timeout_s=int(props.get("leaseTimeout", DEFAULT_LEASE_TIMEOUT_S)),
    )


def _duration(config: pulumi.Config, key: str) -> int | None:
    """A duration setting (`90`, `45s`, `30m`, `12h`) in seconds; None when unset."""
    raw = config.get(key)
    if raw is None or raw == "":
        return None
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ConfigError(f"{CONFIG_NAMESPACE}:{key}", raw, str(exc)) from None


def read_stack_config(config: pulumi.Config) -> tuple[InstanceArgs, int]:
    """The stack's `vast-gpu:*` settings -> (args, count); ConfigError names the bad key."""
    def number(key: str, default: float | None) -> float | None:
        raw = config.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{CONFIG_NAMESPACE}:{key}", raw, "must be a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{CONFIG_NAMESPACE}:{key}", raw, "must be a finite number")
        return value

    image = config.get("image")
    if not image:
        raise ConfigError(
            f"{CONFIG_NAMESPACE}:image", image,
            "required: the Docker image to run, e.g. `pulumi config set image pytorch/pytorch`",
        )
    env = config.get_object("env") or {}
    if not isinstance(env, dict):
        raise ConfigError(f"{CONFIG_NAMESPACE}:env", env, "must be a map of NAME: value")
    count = number("count", 1)
    if not _whole(count) or not 1 <= count <= MAX_COUNT:
        raise ConfigError(
            f"{CONFIG_NAMESPACE}:count", count, f"must be a whole number 1..{MAX_COUNT}"
        )
    login = config.get_secret("registryLogin")
    args = InstanceArgs(
        image=image,
        disk=number("disk", DEFAULT_DISK_GB) or DEFAULT_DISK_GB,
        query=config.get("query") or DEFAULT_QUERY,
        order=config.get("order") or DEFAULT_ORDER,
        max_price_per_hour=number("maxPricePerHour", None),
        onstart=config.get("onstart"),
        env={str(k): str(v) for k, v in env.items()},
        label=config.get("label"),
        bid_price=number("bidPrice", None),
        registry_login=login,  # type: ignore[arg-type]  # a secret Output, resolved by the engine
        ssh_public_key=config.get("sshPublicKey"),
        ready_timeout=number("readyTimeout", DEFAULT_READY_TIMEOUT_S) or DEFAULT_READY_TIMEOUT_S,
        max_attempts=int(number("maxAttempts", DEFAULT_MAX_ATTEMPTS) or DEFAULT_MAX_ATTEMPTS),
        max_lifetime=_duration(config, "maxLifetime"),
        idle_timeout=_duration(config, "idleTimeout"),
        lease_timeout=_duration(config, "leaseTimeout"),
        max_cost=number("maxCost", None),
        expected_hours=number("expectedHours", None),
        expected_sync_gb=number("expectedSyncGB", None),
        expected_pull_gb=number("expectedPullGB", None),
    )
    for key, reason in validate_inputs(args.to_inputs()):
        raise ConfigError(f"{CONFIG_NAMESPACE}:{key}", args.to_inputs().get(key), reason)
    return args, int(count)


def validate_inputs(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, what is wrong) for each bad input; unknown values (preview) are not judged."""
    problems: list[tuple[str, str]] = []
    for key, value in inputs.items():
        if value == UNKNOWN:
            continue
        if key in ("query", "order"):
            try:
                (parse_query if key == "query" else parse_order)(str(value))
            except QueryError as exc:
                problems.append((key, str(exc)))
        elif key in _RULES:
            ok, reason = _RULES[key]
            if not ok(value):
                problems.append((key, f"{value!r}: {reason}"))
    problems += _onstart_room(inputs)
    return problems


def _onstart_room(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """vast.ai takes 4096 characters of onstart; the watchdog's installer uses part of it."""
    keys = ("onstart", "maxLifetime", "idleTimeout", "leaseTimeout")
    onstart = inputs.get("onstart")
    if not isinstance(onstart, str) or any(inputs.get(k) == UNKNOWN for k in keys):
        return []
    if any(k in inputs and not _whole_seconds(inputs[k]) for k in keys[1:]):
        return []  # reported by its own rule
    full = onstart_with_watchdog(onstart, deadman_from_inputs(inputs)) or ""
    if len(full) <= MAX_ONSTART_CHARS:
        return []
    used = len(full) - len(onstart)
    reason = (f"{len(onstart)} characters; at most {MAX_ONSTART_CHARS - used} fit: vast.ai takes "
              f"{MAX_ONSTART_CHARS} and the dead-man switch's installer uses {used}")
    return [("onstart", reason)]


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return _num(value) and value == int(value)


def _whole_seconds(value: Any) -> bool:
    return _whole(value) and value >= 0


def _env_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


_RULES: dict[str, tuple[Any, str]] = {
    "image": (lambda v: isinstance(v, str) and v.strip() != "", "must be a Docker image name"),
    "disk": (lambda v: _num(v) and v >= MIN_DISK_GB, f"must be a number of GB >= {MIN_DISK_GB}"),
    "maxPricePerHour": (lambda v: _num(v) and v > 0, "must be a price in $/h above 0"),
    "bidPrice": (
        lambda v: _num(v) and BID_RANGE[0] <= v <= BID_RANGE[1],
        f"must be a bid in $/h between {BID_RANGE[0]} and {BID_RANGE[1]}",
    ),
    "readyTimeout": (lambda v: _num(v) and v > 0, "must be a number of seconds above 0"),
    "maxAttempts": (lambda v: _whole(v) and v >= 1, "must be a whole number >= 1"),
    **dict.fromkeys(
        ("maxLifetime", "idleTimeout", "leaseTimeout"),
        (_whole_seconds, "must be a duration like 90, 45s, 30m or 12h; 0 = off"),
    ),
    "maxCost": (lambda v: _num(v) and v > 0, "must be dollars above 0 (the whole run's cap)"),
    "expectedHours": (lambda v: _num(v) and v > 0, "must be a number of hours above 0"),
    "expectedSyncGB": (lambda v: _num(v) and v >= 0, "must be a number of GB >= 0"),
    "expectedPullGB": (lambda v: _num(v) and v >= 0, "must be a number of GB >= 0"),
    "env": (_env_map, "must be a map of NAME: string value"),
    "label": (
        lambda v: isinstance(v, str) and len(v) <= MAX_LABEL_CHARS,
        f"must be text of at most {MAX_LABEL_CHARS} characters",
    ),
}
