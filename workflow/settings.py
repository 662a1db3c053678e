"""A stack's settings on the workflow side: one `pulumi config --json`, parsed by the same
table the program and the provider use (providers/settings.py), so `inv search`, `deploy` and
its dry run read exactly what `pulumi up` will read, and fail with the same message."""

from __future__ import annotations

import json
from collections.abc import Mapping

from providers.settings import Settings, from_config_json, parse_settings
from workflow.pulumi import Stack

PLACEHOLDER_IMAGE = "vast-gpu/search-only"
"""Searching needs no image; a stack without one can still be searched with."""


def raw_config(stack: Stack | None) -> dict[str, object]:
    """The stack's `vast-gpu:*` config as raw values (secrets only as present); {} for none."""
    if stack is None:
        return {}
    return from_config_json(json.loads(stack.capture("config", "--json") or "{}"))


def stack_settings(
    stack: Stack | None, overrides: Mapping[str, object] | None = None, *,
    image_required: bool = True,
) -> Settings:
    """The stack's settings with ``overrides`` (bare keys, e.g. from flags) on top."""
    return settings_of(raw_config(stack), overrides, image_required=image_required)


def settings_of(
    config: Mapping[str, object], overrides: Mapping[str, object] | None = None, *,
    image_required: bool = True,
) -> Settings:
    """stack_settings() for a config already read (raw_config), so one read serves a command."""
    raw = dict(config)
    raw.update({f"vast-gpu:{k}": v for k, v in (overrides or {}).items() if v is not None})
    if not image_required:
        raw.setdefault("vast-gpu:image", PLACEHOLDER_IMAGE)
    return parse_settings(raw)
