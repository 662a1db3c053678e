"""A VastClient for a stack, with the key and URL resolved the way the provider resolves them."""

from __future__ import annotations

from providers.api import VastClient
from providers.credentials import STACK_API_URL, load_api_key, load_api_url
from providers.errors import ConfigError
from workflow.pulumi import Stack
from workflow.settings import raw_config


def client_for(stack: Stack | None, *, key_required: bool = True) -> VastClient:
    """A client for the stack's API. Only the URL is read from the stack (no full settings
    parse: teardown uses this too, and must not depend on every setting being valid)."""
    url = raw_config(stack).get(STACK_API_URL)
    return client_at(url if isinstance(url, str) else None, key_required=key_required)


def client_at(stack_url: str | None, *, key_required: bool = True) -> VastClient:
    """Key: VAST_API_KEY or the CLI's key files; URL: VAST_URL, the stack's apiUrl, default.
    Searching works without a key on vast.ai, so `key_required=False` falls back to none."""
    url = load_api_url(stack_url)
    try:
        key = load_api_key()
    except ConfigError:
        if key_required:
            raise
        key = ""
    return VastClient(url, key)
