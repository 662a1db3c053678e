"""A tiny file-backed dynamic resource: proof that the engine runs a provider from a package.

The provider class lives here, not in the program's __main__, so the engine must import it by
reference in its own process (the way providers/ will be imported). A file on disk is the
"cloud": tests can change it behind Pulumi's back and watch refresh notice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)


class FileProvider(ResourceProvider):
    """Creates, reads, updates and deletes one text file."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        path = Path(props["path"])
        path.write_text(props["content"])
        return CreateResult(id_=str(path), outs=_outs(path, props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        path = Path(id_)
        if not path.exists():
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=_outs(path, {**props, "content": path.read_text()}))

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = ["path"] if olds.get("path") != news["path"] else []
        changed = replaces or olds.get("content") != news["content"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        path = Path(id_)
        path.write_text(news["content"])
        return UpdateResult(outs=_outs(path, news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        Path(id_).unlink(missing_ok=True)


def _outs(path: Path, props: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(path), "content": props["content"], "size": path.stat().st_size}


class File(Resource, module="smoke", name="File"):
    """A text file managed by FileProvider."""

    path: pulumi.Output[str]
    content: pulumi.Output[str]
    size: pulumi.Output[int]

    def __init__(self, name: str, path: str, content: str) -> None:
        super().__init__(FileProvider(), name, {"path": path, "content": content, "size": None})
