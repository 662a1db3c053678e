"""API key, URL and registry login resolution: precedence, stripping, and messages that never
hold a secret. Secrets come from the environment and files only, never from stack config."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from providers.credentials import (
    DEFAULT_API_URL,
    api_key_places,
    load_api_key,
    load_api_url,
    registry_login,
    resolve_api_key,
    resolve_api_url,
)
from providers.errors import ApiError, ConfigError, MissingApiKeyError, OfferGoneError

SECRET = "k3y-DO-NOT-LEAK-0123456789abcdef"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def xdg_file(home: Path) -> Path:
    return home / ".config" / "vastai" / "vast_api_key"


def legacy_file(home: Path) -> Path:
    return home / ".vast_api_key"


@pytest.mark.parametrize(
    ("env_key", "xdg", "legacy", "expected"),
    [
        ("env", "xdg", "legacy", "env"),
        (None, "xdg", "legacy", "xdg"),
        (None, None, "legacy", "legacy"),
        # blank values do not count: the next place is tried
        (" \n", "xdg", None, "xdg"),
        (None, "\n", "legacy", "legacy"),
        # whitespace and the file's newline are stripped
        ("\tenv ", None, None, "env"),
        (None, "xdg\n", None, "xdg"),
        (None, None, "  legacy\r\n", "legacy"),
    ],
)
def test_precedence_and_stripping(
    home: Path,
    env_key: str | None,
    xdg: str | None,
    legacy: str | None,
    expected: str,
) -> None:
    env = {} if env_key is None else {"VAST_API_KEY": env_key}
    if xdg is not None:
        write(xdg_file(home), xdg)
    if legacy is not None:
        write(legacy_file(home), legacy)
    assert resolve_api_key(env, home) == expected


def test_xdg_config_home_is_honoured(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "xdg"
    write(config / "vastai" / "vast_api_key", "from-xdg\n")
    write(xdg_file(home), "from-dot-config\n")
    assert resolve_api_key({"XDG_CONFIG_HOME": str(config)}, home) == "from-xdg"


def test_relative_xdg_config_home_is_ignored(home: Path) -> None:
    write(xdg_file(home), "from-dot-config\n")
    assert resolve_api_key({"XDG_CONFIG_HOME": "rel/dir"}, home) == "from-dot-config"


def test_missing_key_names_all_places_and_how_to_set_one(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(config)}
    with pytest.raises(MissingApiKeyError) as info:
        resolve_api_key(env, home)
    message = str(info.value)
    for place in (
        "VAST_API_KEY",
        str(config / "vastai" / "vast_api_key"),
        str(home / ".vast_api_key"),
    ):
        assert place in message
    assert "vast-gpu:apiKey" not in message  # stack config would put the key in state
    assert "export VAST_API_KEY=" in message
    assert info.value.places == api_key_places(env, home)
    assert len(info.value.places) == 3
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_default_places_use_dot_config(home: Path) -> None:
    places = api_key_places({}, home)
    assert places[1].endswith(str(home / ".config" / "vastai" / "vast_api_key"))


def test_unreadable_key_file_is_a_config_error_without_the_key(home: Path) -> None:
    # A directory where the key file should be: reading it fails with an OSError.
    (home / ".config" / "vastai" / "vast_api_key").mkdir(parents=True)
    write(legacy_file(home), SECRET)
    with pytest.raises(ConfigError) as info:
        resolve_api_key({}, home)
    assert str(xdg_file(home)) in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_key_is_in_no_error_message(home: Path) -> None:
    """Errors raised after a key was found (bad URL, bad query) never carry it."""
    env = {"VAST_API_KEY": SECRET, "VAST_URL": f"https://h/?api_key={SECRET}"}
    assert resolve_api_key(env, home) == SECRET
    with pytest.raises(ConfigError) as info:
        resolve_api_url(None, env)
    assert SECRET not in str(info.value)
    assert SECRET not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    ("stack_url", "env", "expected"),
    [
        (None, {}, DEFAULT_API_URL),
        ("", {"VAST_URL": "  "}, DEFAULT_API_URL),
        ("https://stack.example", {}, "https://stack.example"),
        ("https://stack.example", {"VAST_URL": "http://127.0.0.1:8080"}, "http://127.0.0.1:8080"),
        (None, {"VAST_URL": " http://localhost:5000/ "}, "http://localhost:5000"),
        ("https://vast.ai/api/v0/", {}, "https://vast.ai/api/v0"),
        (None, {"VAST_URL": "http://[::1]:9000"}, "http://[::1]:9000"),
    ],
)
def test_api_url_precedence(stack_url: str | None, env: dict[str, str], expected: str) -> None:
    assert resolve_api_url(stack_url, env) == expected


def test_default_api_url() -> None:
    assert DEFAULT_API_URL == "https://console.vast.ai"


@pytest.mark.parametrize(
    ("stack_url", "env", "key", "value"),
    [
        (None, {"VAST_URL": "console.vast.ai"}, "VAST_URL", "console.vast.ai"),
        (None, {"VAST_URL": "ftp://host"}, "VAST_URL", "ftp://host"),
        ("https://", {}, "vast-gpu:apiUrl", "https://"),
        ("http://host:notaport", {}, "vast-gpu:apiUrl", "http://host:notaport"),
        ("http://[::1", {}, "vast-gpu:apiUrl", "http://[::1"),
        ("https://host/#frag", {}, "vast-gpu:apiUrl", "https://host/?..."),
    ],
)
def test_bad_api_url_names_the_key_and_value(
    stack_url: str | None, env: dict[str, str], key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_api_url(stack_url, env)
    assert (info.value.key, info.value.value) == (key, value)
    assert key in str(info.value) and repr(value) in str(info.value)


def test_load_api_url_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAST_URL", "http://127.0.0.1:1234/")
    assert load_api_url("https://ignored.example") == "http://127.0.0.1:1234"


def test_load_api_key_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    write(legacy_file(home), "legacy\n")
    assert load_api_key() == "legacy"
    monkeypatch.setenv("VAST_API_KEY", " env ")
    assert load_api_key() == "env"


@pytest.mark.parametrize(
    ("image", "env", "expected"),
    [
        ("ghcr.io/coriou/voice-tools:cuda", {"GHCR_TOKEN": "ghp_x"},
         "-u coriou -p ghp_x ghcr.io"),
        ("ghcr.io/coriou/voice-tools:cuda", {"GHCR_TOKEN": "ghp_x", "GHCR_USER": "me"},
         "-u me -p ghp_x ghcr.io"),
        ("pytorch/pytorch", {"GHCR_TOKEN": "ghp_x"}, None),  # not a ghcr.io image
        ("ghcr.io/coriou/voice-tools:cuda", {}, None),
        ("pytorch/pytorch", {"VAST_REGISTRY_LOGIN": "-u a -p b docker.io"},
         "-u a -p b docker.io"),
        ("ghcr.io/o/i", {"VAST_REGISTRY_LOGIN": " -u a -p b ghcr.io ", "GHCR_TOKEN": "t"},
         "-u a -p b ghcr.io"),
    ],
)
def test_registry_login_from_the_environment(image: str, env: dict, expected: str | None) -> None:
    assert registry_login(image, env) == expected


def test_api_errors_scrub_a_key_handed_to_them() -> None:
    err = ApiError("get", f"/api/v0/instances/?owner=me&api_key={SECRET}", 500)
    assert SECRET not in str(err) and SECRET not in err.path
    assert str(err) == "GET /api/v0/instances/?owner=me&api_key=*** -> HTTP 500"
    gone = OfferGoneError(
        "PUT", "/api/v0/asks/4711/", 410, "no_such_ask",
        f"error 410/3907: no_such_ask Instance type 4711 is no longer available. api_key={SECRET}",
    )  # fmt: skip
    assert SECRET not in str(gone)
    assert str(gone).startswith("PUT /api/v0/asks/4711/ -> HTTP 410 no_such_ask: error 410/3907")
