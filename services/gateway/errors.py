"""API errors as JSON: one exception type for handlers, one middleware for everything else.

Every failure leaves the gateway as ``{"error": {"code", "message", "field"}}``, including
aiohttp's own 404/405/413, Redis outages and a full Redis (503), so clients parse a single
shape. An API surface with an error shape of its own (the OpenAI-compatible /v1) registers
a renderer for its path prefix in :data:`ERROR_RENDERERS`; the same failures then leave in
that shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from shared.http import Handler, json_error
from shared.redis import REDIS_UNAVAILABLE, storage_full

log = structlog.get_logger("gateway.errors")

#: Seconds a client is told to wait before retrying while Redis is unreachable (a Sentinel
#: failover takes about down-after-milliseconds plus a second or two).
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


#: Renders (status, code, message, field, headers) as a response.
Renderer = Callable[[int, str, str, str | None, Mapping[str, str]], web.Response]
#: App key: ((path prefix, renderer), ...); a path under a prefix gets that renderer's shape.
ERROR_RENDERERS = web.AppKey("error_renderers", tuple)


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


def render_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The error in the shape of the API surface ``request`` is on."""
    for prefix, render in request.app.get(ERROR_RENDERERS, ()):
        if request.path.startswith(prefix):
            return render(status, code, message, field, headers or {})
    return error_response(status, code, message, field, headers)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status) or re.sub(r"\W+", "_", exc.reason.lower()).strip("_")
    if exc.status == 404:
        message = f"no route for {request.method} {request.path}"
    elif exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return render_error(request, exc.status, code, message, None, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception a handler lets out into the JSON error body."""
    try:
        return await handler(request)
    except ApiError as exc:
        return render_error(request, exc.status, exc.code, exc.message, exc.field, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except REDIS_UNAVAILABLE as exc:
        # Includes a Sentinel failover in progress: no master named yet, or a demoted one.
        log.warning("redis_unavailable", path=request.path, error=str(exc))
        return render_error(
            request,
            503,
            "redis_unavailable",
            "task storage is unreachable, retry later",
            headers={"Retry-After": RETRY_AFTER},
        )
    except RedisError as exc:
        if storage_full(exc):
            # Redis refused the write before making it: nothing of the request was stored.
            log.warning("redis_storage_full", path=request.path, error=str(exc))
            return render_error(
                request,
                503,
                "storage_full",
                "task storage is full (Redis maxmemory reached); nothing was stored, retry later",
                headers={"Retry-After": STORAGE_FULL_RETRY_AFTER},
            )
        log.exception("redis_error", path=request.path)
        return render_error(request, 503, "storage_error", "task storage failed, retry later")
    except Exception:
        # Not swallowed: logged with its traceback, answered as JSON rather than HTML.
        log.exception("unhandled_error", path=request.path)
        return render_error(request, 500, "internal_error", "internal server error")
