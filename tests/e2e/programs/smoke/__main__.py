"""Smoke program: one File resource from tests.e2e.smoke_provider (PYTHONPATH = repo root)."""

import pulumi

from tests.e2e.smoke_provider import File

config = pulumi.Config()
note = File("note", path=config.require("path"), content=config.require("content"))
pulumi.export("path", note.path)
pulumi.export("content", note.content)
pulumi.export("size", note.size)
