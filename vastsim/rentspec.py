"""What a rent body (``PUT /api/v0/asks/{id}/``) may hold: vast.ai's checks and limits.

Kept apart from the model so the rules read in one place (vast-api.md "Rent"); ``rent_spec``
answers the ``Instance`` keyword arguments, or raises the ApiError vast.ai would send.
"""

from __future__ import annotations

import json
from typing import Any

from vastsim.errors import ApiError

MIN_DISK_GB = 8.0
MAX_LABEL = 1024
MAX_IMAGE = 1024
MAX_ONSTART = 4096
MAX_ENV_ENTRY = 256
MAX_ENV_TOTAL = 32768
BID_RANGE = (0.001, 128.0)


def rent_spec(offer_id: int, body: Any) -> dict[str, Any]:
    """Check a rent body the way vast.ai does (vast-api.md 3.2, 3.4); Instance kwargs."""
    if not isinstance(body, dict):
        raise ApiError.vast(400, "invalid_args", "Invalid args: request body must be an object")
    env = body.get("env")
    if env is None:
        env = {}
    if not isinstance(env, dict):
        raise ApiError.vast(400, "invalid_args", "invalid env type: env must be a dict")
    pairs = [[str(k), "" if v is None else str(v)] for k, v in env.items()]
    if any(len(k) + len(v) > MAX_ENV_ENTRY for k, v in pairs) or \
            sum(len(k) + len(v) for k, v in pairs) > MAX_ENV_TOTAL:
        raise ApiError.vast(400, "invalid_args", f"env entries are limited to {MAX_ENV_ENTRY} "
                            f"characters each and {MAX_ENV_TOTAL} in total")
    image = body.get("image")
    if not image:
        if body.get("template_hash_id"):
            raise ApiError.vast(404, "invalid_args",
                                f"template {body['template_hash_id']!r} not found")
        raise ApiError.vast(400, "invalid_args", "Invalid args: 'image' is required")
    if not isinstance(image, str) or len(image) > MAX_IMAGE:
        raise ApiError.vast(400, "invalid_args", f"image must be a string of at most {MAX_IMAGE} "
                            "characters")
    disk = body.get("disk", MIN_DISK_GB)
    disk = MIN_DISK_GB if disk is None else disk
    if isinstance(disk, bool) or not isinstance(disk, int | float) or disk < MIN_DISK_GB:
        raise ApiError.vast(400, "invalid_args", f"disk must be a number >= {MIN_DISK_GB:g} GB, "
                            f"got {disk!r}")
    label = body.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
        raise ApiError.vast(400, "label_too_long", "Please limit label length to 1024 "
                            "characters, ideally less than 128.")
    price = body.get("price")
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                              or not BID_RANGE[0] <= price <= BID_RANGE[1]):
        raise ApiError.vast(400, "invalid_price", f"bid price must be between {BID_RANGE[0]} and "
                            f"{BID_RANGE[1]} $/hour, got {price!r}", ask_id=offer_id)
    onstart = body.get("onstart")
    if onstart is not None and not isinstance(onstart, str):
        raise ApiError.vast(400, "invalid_args", "onstart must be a string")
    args = body.get("args") or []
    if len(onstart or "") + len(json.dumps(args)) > MAX_ONSTART:
        raise ApiError.vast(400, "invalid_args", f"onstart and args together are limited to "
                            f"{MAX_ONSTART} characters")
    runtype = body.get("runtype") or ("args" if body.get("args") is not None else "ssh")
    return {"image": image, "disk": float(disk), "label": label, "onstart": onstart,
            "env": pairs, "runtype": str(runtype),
            "price": float(price) if price is not None else None,
            "template_hash_id": body.get("template_hash_id"),
            "image_args": args if isinstance(args, list) else []}
