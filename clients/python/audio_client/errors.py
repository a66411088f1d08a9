"""Exceptions. An error answer of the API becomes an :class:`ApiError` carrying its stable
``code`` (docs/api.md, "Errors"); a gateway that cannot be reached becomes
:class:`ConnectionFailed`."""

from __future__ import annotations

from typing import Any

import httpx


class AudioClientError(Exception):
    """Base of every exception this package raises."""


class ConnectionFailed(AudioClientError):
    """The gateway could not be reached, or the connection broke before an answer."""


class WaitTimeout(AudioClientError):
    """:meth:`audio_client.Client.wait` gave up before the task reached a final status."""

    def __init__(self, task: Any, timeout: float) -> None:
        super().__init__(f"task {task.task_id} is still {task.status} after {timeout:g} s")
        self.task = task
        self.timeout = timeout


class ApiError(AudioClientError):
    """An error answer: ``{"error": {"code", "message", "field"}}``.

    ``code`` is the API's machine code (``task_not_found``, ``rate_limited``, ...);
    ``retry_after`` the Retry-After header in seconds, when the answer had one.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.request_id = request_id


class BadRequest(ApiError):
    """400, 413, 415 or 422: the request was refused as it is; nothing was stored."""


class AuthenticationError(ApiError):
    """401: a key is needed, unknown or revoked."""


class NotFound(ApiError):
    """404: no such task (or not the caller's), or no such route."""


class Conflict(ApiError):
    """409: the task is not in a state that allows this (e.g. cancelling a finished task)."""


class RateLimited(ApiError):
    """429: the key's bucket is empty; ``retry_after`` says when to try again."""


class Unavailable(ApiError):
    """5xx: the gateway or its storage is unavailable; ``retry_after`` when it said."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    429: RateLimited,
}


def from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer; bodies not in the API's shape (a proxy's HTML
    page, say) still give one, with the HTTP reason as its code."""
    code = response.reason_phrase.lower().replace(" ", "_") or f"http_{response.status_code}"
    message, field = response.text[:200].strip() or response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = str(detail.get("code") or code)
        message = str(detail.get("message") or message)
        field = detail.get("field")
    retry_after: float | None
    try:
        retry_after = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        retry_after = None
    status = response.status_code
    cls = _BY_STATUS.get(status) or (Unavailable if status >= 500 else ApiError)
    return cls(
        status,
        code,
        message,
        field,
        retry_after=retry_after,
        request_id=response.headers.get("X-Request-ID"),
    )
