"""Who may open the dashboard and the admin endpoints.

An admin key (``python -m services.gateway keys create --name NAME --admin``) opens them,
from anywhere, sent as ``Authorization: Bearer <key>``, ``X-API-Key: <key>`` or, for a
browser, HTTP Basic with the key as the password (the browser asks once, then sends it
with the page's own requests). Without a key they are open only to a caller on loopback
in development (ENVIRONMENT=development, API_KEYS_REQUIRED=false: ``make run``); any
other caller gets 401 with a Basic challenge, and a valid key that is not an admin key
gets 403. A request relayed by a proxy that is not in TRUSTED_PROXIES is never "on
loopback", even when the proxy is: the proxy may be relaying anyone.
"""

from __future__ import annotations

import base64
import binascii
import functools

import structlog
from aiohttp import web

from services.gateway.apikeys import ApiKey
from services.gateway.clientip import client_address, parse_address
from services.gateway.errors import ApiError
from services.gateway.state import API_KEYS, SETTINGS
from shared.http import Handler

log = structlog.get_logger("gateway.admin")

#: Sent with every 401 here: browsers answer a Basic challenge with their login prompt.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="audio-subnet admin", charset="UTF-8"'}
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers=CHALLENGE)


def _basic_password(token: str) -> str:
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("invalid_authorization", "malformed Basic credentials") from None
    _, _, password = decoded.partition(":")
    return password.strip()


def presented_key(request: web.Request) -> str | None:
    """The key the request carries (Bearer, Basic password or X-API-Key), if any."""
    authorization = request.headers.get("Authorization")
    header_key = request.headers.get("X-API-Key")
    from_authorization = None
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            from_authorization = token.strip()
        elif scheme.lower() == "basic":
            from_authorization = _basic_password(token)
        else:
            raise _unauthorized(
                "invalid_authorization", "Authorization must be 'Bearer <admin key>' or Basic"
            )
    key = from_authorization if from_authorization is not None else header_key
    if from_authorization is not None and header_key is not None:
        if header_key.strip() != from_authorization:
            raise _unauthorized(
                "invalid_authorization", "Authorization and X-API-Key carry different keys"
            )
    return key.strip() if key is not None and key.strip() else None


def on_loopback(request: web.Request) -> bool:
    """The caller is on this host, and no untrusted proxy stands in between."""
    proxies = request.app[SETTINGS].trusted_proxies
    address = client_address(request, proxies)
    if address is None or not address.is_loopback:
        return False
    peer = parse_address(request.remote or "")
    relayed = any(name in request.headers for name in FORWARDING_HEADERS)
    return not relayed or (peer is not None and any(peer in n for n in proxies))


def open_without_key(request: web.Request) -> bool:
    """Development on loopback: ``make run``'s dashboard needs no key."""
    settings = request.app[SETTINGS]
    return (
        settings.environment == "development"
        and not settings.api_keys_required
        and on_loopback(request)
    )


async def admin_key(request: web.Request, key: str) -> ApiKey:
    record = await request.app[API_KEYS].lookup(key)
    if record is None:
        log.info("admin_key_rejected", reason="unknown", path=request.path)
        raise _unauthorized("invalid_api_key", "the API key is not valid")
    if record.revoked:
        log.info("admin_key_rejected", reason="revoked", prefix=record.prefix, path=request.path)
        raise _unauthorized("api_key_revoked", f"the API key {record.prefix} has been revoked")
    if not record.admin:
        log.info("admin_key_rejected", reason="not_admin", prefix=record.prefix, path=request.path)
        raise ApiError(
            403, "admin_key_required", f"the API key {record.prefix} is not an admin key"
        )
    return record


async def check(request: web.Request) -> None:
    """Let the request through, or raise the 401 or 403 that says why not."""
    key = presented_key(request)
    if key is not None:
        await admin_key(request, key)
    elif not open_without_key(request):
        raise _unauthorized(
            "missing_admin_key",
            "an admin key is required: Authorization: Bearer <key> (keys create --admin)",
        )


def admin_only(handler: Handler) -> Handler:
    """``handler`` behind :func:`check`."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        await check(request)
        return await handler(request)

    return guarded
