"""Where the API key and URL come from, and the named defaults of the stack settings.

We use the vendor's own names (``VAST_API_KEY``, ``VAST_URL``, the CLI's key files), so one
key set up for the official ``vastai`` CLI serves us too. The resolvers are pure: they take the
environment and the home directory as arguments; ``load_api_key`` / ``load_api_url`` are the
one-line wrappers that read the real ones. The key is never put in a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from providers.errors import ConfigError, MissingApiKeyError

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "CONFIG_NAMESPACE",
    "DEFAULT_API_URL",
    "DEFAULT_APP_DIR",
    "DEFAULT_DISK_GB",
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_LEASE_TIMEOUT_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_LIFETIME_S",
    "DEFAULT_ORDER",
    "DEFAULT_QUERY",
    "DEFAULT_READY_TIMEOUT_S",
    "DEFAULT_WORK_DIR",
    "STACK_API_KEY",
    "STACK_API_URL",
    "api_key_places",
    "load_api_key",
    "load_api_url",
    "resolve_api_key",
    "resolve_api_url",
]

CONFIG_NAMESPACE = "vast-gpu"
STACK_API_KEY = f"{CONFIG_NAMESPACE}:apiKey"
STACK_API_URL = f"{CONFIG_NAMESPACE}:apiUrl"
API_KEY_ENV = "VAST_API_KEY"
API_URL_ENV = "VAST_URL"
DEFAULT_API_URL = "https://console.vast.ai"

# Defaults of the stack settings: those of the bash script this project replaces.
DEFAULT_QUERY = (
    "reliability > 0.98 gpu_ram >= 20 compute_cap >= 700 inet_down >= 200 disk_space >= 50"
)
DEFAULT_ORDER = "dph+"
DEFAULT_DISK_GB = 60
DEFAULT_READY_TIMEOUT_S = 900
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_APP_DIR = "/app"
# The dead-man switch (remote/watchdog.py): a hard deadline, an idle time, a batch lease.
DEFAULT_MAX_LIFETIME_S = 12 * 3600
DEFAULT_IDLE_TIMEOUT_S = 30 * 60
DEFAULT_LEASE_TIMEOUT_S = 10 * 60
DEFAULT_WORK_DIR = "/work"

_KEY_FILE_XDG = Path("vastai") / "vast_api_key"  # under $XDG_CONFIG_HOME, as `vastai set api-key`
_KEY_FILE_LEGACY = ".vast_api_key"  # under $HOME; older CLIs wrote it
_MISSING_KEY_HINT = (
    "Set one with\n"
    f"  pulumi config set --secret {STACK_API_KEY} <key>\n"
    "or\n"
    f"  export {API_KEY_ENV}=<key>"
)


def _config_home(env: Mapping[str, str], home: Path) -> Path:
    """``$XDG_CONFIG_HOME``, or ``~/.config`` when unset or relative (the XDG rule)."""
    xdg = env.get("XDG_CONFIG_HOME", "")
    return Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".config"


def _key_files(env: Mapping[str, str], home: Path) -> tuple[Path, Path]:
    return _config_home(env, home) / _KEY_FILE_XDG, home / _KEY_FILE_LEGACY


def api_key_places(env: Mapping[str, str], home: Path) -> tuple[str, ...]:
    """Every place ``resolve_api_key`` looks, in order, as the user would name it."""
    xdg_file, legacy_file = _key_files(env, home)
    return (
        f"stack secret {STACK_API_KEY}",
        f"environment variable {API_KEY_ENV}",
        f"file {xdg_file}",
        f"file {legacy_file}",
    )


def resolve_api_key(stack_key: str | None, env: Mapping[str, str], home: Path) -> str:
    """The vast.ai API key: stack secret, ``VAST_API_KEY``, then the CLI's two key files.

    The first non-blank one wins, stripped (key files end in a newline). When there is none,
    ``MissingApiKeyError`` names all four places and how to set a key.
    """
    xdg_file, legacy_file = _key_files(env, home)
    for candidate in (stack_key, env.get(API_KEY_ENV), _read_key_file(xdg_file),
                      _read_key_file(legacy_file)):  # fmt: skip
        if candidate and candidate.strip():
            return candidate.strip()
    raise MissingApiKeyError(api_key_places(env, home), _MISSING_KEY_HINT)


def _read_key_file(path: Path) -> str | None:
    """The file's text, or None when it does not exist; an unreadable one is a ConfigError."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot read the API key file: {type(exc).__name__}: {exc.strerror or ''}"
        raise ConfigError(str(path), "<not shown>", reason.rstrip(": ")) from None


def resolve_api_url(stack_url: str | None, env: Mapping[str, str]) -> str:
    """The API base URL: ``VAST_URL``, then the stack's ``apiUrl``, else ``DEFAULT_API_URL``.

    The environment wins so tests and ``make demo`` can point any stack at vastsim. The
    result has no trailing slash; anything but an http(s) URL with a host is a ConfigError.
    """
    for key, candidate in ((API_URL_ENV, env.get(API_URL_ENV)), (STACK_API_URL, stack_url)):
        if candidate and candidate.strip():
            return _check_url(key, candidate.strip())
    return DEFAULT_API_URL


def _check_url(key: str, url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - validates the port
    except ValueError:  # e.g. a bad IPv6 literal or port
        raise ConfigError(key, url, "not a valid URL") from None
    if parts.query or parts.fragment:
        # A query might carry a key (api_key=...): do not echo it.
        shown = parts._replace(query="", fragment="").geturl() + "?..."
        raise ConfigError(key, shown, "must not have a query string or fragment")
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(key, url, "must be an http:// or https:// URL with a host")
    return url.rstrip("/")


def load_api_key(stack_key: str | None = None) -> str:
    """``resolve_api_key`` against this process's environment and home directory."""
    return resolve_api_key(stack_key, os.environ, Path.home())


def load_api_url(stack_url: str | None = None) -> str:
    """``resolve_api_url`` against this process's environment."""
    return resolve_api_url(stack_url, os.environ)
