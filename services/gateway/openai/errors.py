"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The status codes and ``code`` values are the gateway's own (docs/api.md); ``type`` is
OpenAI's family for the status, which OpenAI's SDKs and most clients show, and ``param``
names the offending field. Registered for the /v1 prefix, so the shared middlewares'
failures (401, 429, 503, aiohttp's 404/405/413) leave /v1 in this shape too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from services.gateway.errors import ApiError

PREFIX = "/v1/"
#: OpenAI's SDKs retry 408, 409, 429 and 5xx unless this header says no; a retry of a
#: synchronous call would queue a second task, so the answers that name a task carry it.
NO_RETRY = {"x-should-retry": "false"}

_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    """OpenAI's error family for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def render(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    task_id: str | None = None,
) -> web.Response:
    """The error answer (a ``services.gateway.errors.Renderer``); an error about a stored
    task names it (``task_id``)."""
    error = {"message": message, "type": error_type(status), "param": param, "code": code}
    body = {"error": {**error, "task_id": task_id} if task_id else error}
    return web.Response(
        text=json.dumps(body),
        status=status,
        content_type="application/json",
        headers=dict(headers or {}),
    )


def invalid(code: str, message: str, param: str | None = None) -> ApiError:
    """A 400 for a /v1 request field (rendered by :func:`render`)."""
    return ApiError(400, code, message, param)


class TaskError(ApiError):
    """A task that was stored but gave no result in time or failed: the answer names it
    and where to poll it, and asks OpenAI's SDKs not to retry (a retry is a new task)."""

    def __init__(self, status: int, code: str, message: str, task_id: str, location: str):
        super().__init__(status, code, message, headers={"Location": location, **NO_RETRY})
        self.task_id = task_id

    def response(self) -> web.Response:
        return render(self.status, self.code, self.message, None, self.headers, self.task_id)
