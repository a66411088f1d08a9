"""Request bodies: JSON (media type, size, syntax, top-level object) and the read deadline."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from services.gateway.errors import ApiError, render_error
from shared.http import REQUEST_ID_HEADER, REQUEST_ID_KEY

log = structlog.get_logger("gateway.bodies")

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
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


async def body_timeout(request: web.Request, seconds: float) -> web.Response:
    """Answer 408 to a body that did not arrive in time, then close the connection.

    The answer is sent here, not returned for sending: aiohttp would otherwise keep the
    connection for up to 10 s more (its lingering close, reading what is left of the body),
    and a stalled client is owed nothing after its answer."""
    log.info("body_timeout", path=request.path, seconds=seconds)
    response = render_error(
        request, 408, "request_timeout", f"the request body did not arrive within {seconds:g} s"
    )
    response.headers[REQUEST_ID_HEADER] = request.get(REQUEST_ID_KEY, "")
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
