"""JSON request bodies: media type, size (aiohttp's client_max_size), syntax, top-level object."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.gateway.errors import ApiError

JSON = "application/json"


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; 415 for another media type, 400 when it does not parse.

    The body is at most ``client_max_size`` bytes (MAX_JSON_BYTES): aiohttp raises 413
    before buffering more, and the error middleware renders it as JSON.
    """
    if request.content_type != JSON:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected {JSON}, got {request.content_type or 'no Content-Type'}",
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body
