"""API errors as JSON: one exception type for handlers, one middleware for everything else.

Every failure leaves the gateway as ``{"error": {"code", "message", "field"}}``, including
aiohttp's own 404/405/413, Redis outages and a full Redis (503), so clients parse a single
shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import structlog
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.http import Handler, json_error
from shared.redis import storage_full

log = structlog.get_logger("gateway.errors")

#: Seconds a client is told to wait before retrying while Redis is unreachable.
RETRY_AFTER = "5"
#: ... while Redis refuses writes at maxmemory: memory comes back as results expire or an
#: operator acts, rarely within seconds, so clients are asked to wait longer.
STORAGE_FULL_RETRY_AFTER = "30"

_HTTP_CODES = {
    403: "forbidden",  # aiohttp-cors refusing a preflight
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """A client-facing failure: HTTP status, stable machine code, message, offending field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.field, self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """:func:`shared.http.json_error` with arbitrary header names (Retry-After, Allow)."""
    response = json_error(status, code, message, field)
    response.headers.update(headers or {})
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status) or re.sub(r"\W+", "_", exc.reason.lower()).strip("_")
    if exc.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return error_response(exc.status, code, message, None, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception a handler lets out into the JSON error body."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("redis_unavailable", path=request.path, error=str(exc))
        return error_response(
            503,
            "redis_unavailable",
            "task storage is unreachable, retry later",
            headers={"Retry-After": RETRY_AFTER},
        )
    except RedisError as exc:
        if storage_full(exc):
            # Redis refused the write before making it: nothing of the request was stored.
            log.warning("redis_storage_full", path=request.path, error=str(exc))
            return error_response(
                503,
                "storage_full",
                "task storage is full (Redis maxmemory reached); nothing was stored, retry later",
                headers={"Retry-After": STORAGE_FULL_RETRY_AFTER},
            )
        log.exception("redis_error", path=request.path)
        return error_response(503, "storage_error", "task storage failed, retry later")
    except Exception:
        # Not swallowed: logged with its traceback, answered as JSON rather than HTML.
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "internal server error")
