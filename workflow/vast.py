"""A VastClient for a stack, with the key and URL resolved the way the provider resolves them."""

from __future__ import annotations

from providers.api import VastClient
from providers.errors import ConfigError
from providers.settings import STACK_API_KEY, STACK_API_URL, load_api_key, load_api_url
from workflow.errors import PulumiError
from workflow.pulumi import Stack


def stack_config(stack: Stack | None, key: str) -> str | None:
    """One config value of the stack (secrets decrypted), None when unset or no stack."""
    if stack is None:
        return None
    try:
        return stack.capture("config", "get", key).strip() or None
    except PulumiError:
        return None


def client_for(stack: Stack | None, *, key_required: bool = True) -> VastClient:
    """Key: stack secret, VAST_API_KEY, the CLI's key files; URL: VAST_URL, stack, default.

    Searching works without a key on vast.ai, so `key_required=False` falls back to none.
    """
    url = load_api_url(stack_config(stack, STACK_API_URL))
    try:
        key = load_api_key(stack_config(stack, STACK_API_KEY))
    except ConfigError:
        if key_required:
            raise
        key = ""
    return VastClient(url, key)
