"""The project's pulumi environment: offline, project-local, and the passphrase rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workflow import pulumi_env as pe

CLEAN = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


@pytest.mark.parametrize("stack", ["local", "demo", "test-smoke-1", "local-job-20261128"])
def test_local_stacks_get_the_fixed_passphrase(stack: str) -> None:
    assert pe.pulumi_env(stack, CLEAN)["PULUMI_CONFIG_PASSPHRASE"] == pe.LOCAL_PASSPHRASE


@pytest.mark.parametrize("stack", [None, "exp-llama", "prod", "localhost"])
def test_real_stacks_never_get_the_fixed_passphrase(stack: str | None) -> None:
    assert "PULUMI_CONFIG_PASSPHRASE" not in pe.pulumi_env(stack, CLEAN)


def test_users_own_passphrase_wins_even_on_local_stacks() -> None:
    env = pe.pulumi_env("local", {**CLEAN, "PULUMI_CONFIG_PASSPHRASE_FILE": "/secret"})
    assert "PULUMI_CONFIG_PASSPHRASE" not in env
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == "/secret"


def test_defaults_are_offline_and_project_local() -> None:
    env = pe.pulumi_env("exp", CLEAN)
    assert env["PULUMI_BACKEND_URL"] == pe.STATE_DIR.as_uri()
    assert env["PULUMI_HOME"] == str(pe.HOME_DIR)
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"


def test_users_backend_and_home_are_kept() -> None:
    env = pe.pulumi_env("exp", {**CLEAN, "PULUMI_BACKEND_URL": "s3://team", "PULUMI_HOME": "/h"})
    assert env["PULUMI_BACKEND_URL"] == "s3://team"
    assert env["PULUMI_HOME"] == "/h"


def test_built_cli_comes_first_on_path() -> None:
    env = pe.pulumi_env(None, CLEAN)
    if pe.TOOLS_BIN.is_dir():
        assert env["PATH"].split(":")[0] == str(pe.TOOLS_BIN)
    else:
        assert env["PATH"] == CLEAN["PATH"]


def test_script_prints_exports_a_shell_can_eval() -> None:
    out = subprocess.run(
        [sys.executable, str(pe.ROOT / "tools" / "pulumi_env.py"), "--stack", "local"],
        capture_output=True, text=True, check=True, env=CLEAN,
    ).stdout
    shell = subprocess.run(
        ["bash", "-c", f'{out}\necho "$PULUMI_BACKEND_URL|$PULUMI_CONFIG_PASSPHRASE"'],
        capture_output=True, text=True, check=True, env=CLEAN,
    ).stdout.strip()
    assert shell == f"{pe.STATE_DIR.as_uri()}|{pe.LOCAL_PASSPHRASE}"


@pytest.mark.parametrize("url", [
    "postgres://alice:pw@db.team:5432/vastgpu?sslmode=require",
    "s3://vast-gpu-state?endpoint=http://minio.team:9000&use_path_style=true&region=us-east-1",
])
def test_a_team_backend_is_kept_and_never_echoed(url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", url)
    assert pe.pulumi_env("exp")["PULUMI_BACKEND_URL"] == url
    assert "PULUMI_BACKEND_URL" not in pe.shell_exports("exp")  # its password stays unprinted
def _eval_twice(first: str, second: str, extra: str = "") -> str:
    script = pe.ROOT / "tools" / "pulumi_env.py"
    return subprocess.run(
        ["bash", "-c",
         f'eval "$({sys.executable} {script} --stack {first})"\n{extra}\n'
         f'eval "$({sys.executable} {script} --stack {second})"\n'
         'echo "${PULUMI_CONFIG_PASSPHRASE-unset}|$PATH"'],
        capture_output=True, text=True, check=True, env=CLEAN,
    ).stdout.strip()


def test_a_second_eval_takes_back_the_fixed_passphrase_of_the_first() -> None:
    passphrase, path = _eval_twice("local", "my-exp").split("|")
    assert passphrase == "unset"
    assert path.split(":").count(str(pe.TOOLS_BIN)) == (1 if pe.TOOLS_BIN.is_dir() else 0)


def test_a_passphrase_the_user_set_after_the_eval_is_never_taken_back() -> None:
    assert _eval_twice("local", "my-exp", "export PULUMI_CONFIG_PASSPHRASE=mine") \
        .startswith("mine|")


def test_a_task_run_from_a_shell_that_evaled_a_local_stack_gets_no_fixed_passphrase() -> None:
    lines = pe.shell_exports("local", CLEAN).splitlines()
    evaled = dict(CLEAN)
    for line in lines:
        name, _, value = line.removeprefix("export ").partition("=")
        evaled[name] = value.strip("'")
    assert evaled["PULUMI_CONFIG_PASSPHRASE"] == pe.LOCAL_PASSPHRASE
    assert "PULUMI_CONFIG_PASSPHRASE" not in pe.pulumi_env("my-exp", evaled)
    assert pe.pulumi_env("local", evaled)["PULUMI_CONFIG_PASSPHRASE"] == pe.LOCAL_PASSPHRASE
