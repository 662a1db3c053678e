"""Where the API key, the API URL and a private registry's login come from.

We use the vendor's own names (``VAST_API_KEY``, ``VAST_URL``, the CLI's key files), so one
key set up for the official ``vastai`` CLI serves us too. Secrets are read only from the
environment and files, never from Pulumi config: the engine records every ``vast-gpu:*``
config value (secrets too, encrypted) among the inputs of the default ``pulumi-python``
provider in the stack's state, its history and its backups, so a key there would be kept
wherever the state goes (docs/secrets.md; providers/settings.py refuses such keys).

The resolvers are pure: they take the environment and the home directory as arguments;
``load_api_key`` / ``load_api_url`` / ``load_registry_login`` read the real ones. No message
ever contains a secret.
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
    "DEFAULT_API_URL",
    "GHCR_TOKEN_ENV",
    "GHCR_USER_ENV",
    "REGISTRY_LOGIN_ENV",
    "STACK_API_URL",
    "api_key_places",
    "load_api_key",
    "load_api_url",
    "load_registry_login",
    "registry_login",
    "resolve_api_key",
    "resolve_api_url",
]

STACK_API_URL = "vast-gpu:apiUrl"
API_KEY_ENV = "VAST_API_KEY"
API_URL_ENV = "VAST_URL"
DEFAULT_API_URL = "https://console.vast.ai"

REGISTRY_LOGIN_ENV = "VAST_REGISTRY_LOGIN"  # docker login arguments, as `vastai --login` takes
GHCR_TOKEN_ENV = "GHCR_TOKEN"  # the old script's: a GitHub PAT with read:packages
GHCR_USER_ENV = "GHCR_USER"
GHCR_HOST = "ghcr.io"

_KEY_FILE_XDG = Path("vastai") / "vast_api_key"  # under $XDG_CONFIG_HOME, as `vastai set api-key`
_KEY_FILE_LEGACY = ".vast_api_key"  # under $HOME; older CLIs wrote it
_MISSING_KEY_HINT = (
    "Set one with\n"
    f"  export {API_KEY_ENV}=<key>\n"
    "or write it to ~/.config/vastai/vast_api_key (what `vastai set api-key` does)."
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
        f"environment variable {API_KEY_ENV}",
        f"file {xdg_file}",
        f"file {legacy_file}",
    )


def resolve_api_key(env: Mapping[str, str], home: Path) -> str:
    """The vast.ai API key: ``VAST_API_KEY``, then the CLI's two key files.

    The first non-blank one wins, stripped (key files end in a newline). When there is none,
    ``MissingApiKeyError`` names all three places and how to set a key.
    """
    xdg_file, legacy_file = _key_files(env, home)
    for candidate in (env.get(API_KEY_ENV), _read_key_file(xdg_file),
                      _read_key_file(legacy_file)):
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


def load_api_key() -> str:
    """``resolve_api_key`` against this process's environment and home directory."""
    return resolve_api_key(os.environ, Path.home())


def load_api_url(stack_url: str | None = None) -> str:
    """``resolve_api_url`` against this process's environment."""
    return resolve_api_url(stack_url, os.environ)


def registry_login(image: str, env: Mapping[str, str]) -> str | None:
    """The rent's ``image_login`` (docker login arguments: ``-u USER -p PASS REGISTRY``).

    ``VAST_REGISTRY_LOGIN`` when set; else, for a ``ghcr.io`` image, ``GHCR_TOKEN`` as the old
    script used it, with ``GHCR_USER`` (default: the image's owner, ``ghcr.io/<owner>/...``).
    None when the image needs no login.
    """
    explicit = (env.get(REGISTRY_LOGIN_ENV) or "").strip()
    if explicit:
        return explicit
    token = (env.get(GHCR_TOKEN_ENV) or "").strip()
    parts = image.split("/")
    if not token or len(parts) < 2 or parts[0].lower() != GHCR_HOST:
        return None
    user = (env.get(GHCR_USER_ENV) or "").strip() or parts[1]
    return f"-u {user} -p {token} {GHCR_HOST}"


def load_registry_login(image: str) -> str | None:
    """``registry_login`` against this process's environment."""
    return registry_login(image, os.environ)
