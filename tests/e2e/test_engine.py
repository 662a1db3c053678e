"""The real engine runs our Python dynamic providers: up, refresh and destroy for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.pulumi_cli import PulumiCli

pytestmark = pytest.mark.e2e

FILE_TYPE = "pulumi-python:dynamic/smoke:File"


def test_pulumi_cli_is_new_enough_for_the_sdk(smoke_stack: PulumiCli) -> None:
    version = smoke_stack.run_raw("version").strip()
    parts = tuple(int(p) for p in version.removeprefix("v").split("-")[0].split("."))
    assert parts >= (3, 272, 0), version


def test_up_refresh_destroy_lifecycle(smoke_stack: PulumiCli, tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    smoke_stack.run("config", "set", "path", str(target))
    smoke_stack.run("config", "set", "content", "hello")

    smoke_stack.run("up", "--yes", "--non-interactive")
    assert target.read_text() == "hello"
    assert smoke_stack.outputs() == {"path": str(target), "content": "hello", "size": 5}
    [res] = smoke_stack.resources(FILE_TYPE)
    assert res["id"] == str(target)
    assert res["outputs"]["content"] == "hello"
    assert "__provider" in res["inputs"]  # the provider travelled by reference into state

    target.write_text("changed behind pulumi's back")
    smoke_stack.run("refresh", "--yes", "--non-interactive")
    [res] = smoke_stack.resources(FILE_TYPE)
    assert res["outputs"]["content"] == "changed behind pulumi's back"
    assert res["outputs"]["size"] == len("changed behind pulumi's back")

    smoke_stack.run("config", "set", "content", "updated in place")
    smoke_stack.run("up", "--yes", "--non-interactive")
    [res] = smoke_stack.resources(FILE_TYPE)
    assert res["id"] == str(target)
    assert target.read_text() == "updated in place"

    target.unlink()
    smoke_stack.run("refresh", "--yes", "--non-interactive")
    assert smoke_stack.resources(FILE_TYPE) == []

    smoke_stack.run("up", "--yes", "--non-interactive")
    assert target.read_text() == "updated in place"

    smoke_stack.run("destroy", "--yes", "--non-interactive")
    assert not target.exists()
    assert smoke_stack.resources(FILE_TYPE) == []
