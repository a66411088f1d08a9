"""API-key authentication: who is calling, set as the request's IDENTITY.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Any key given is
checked, on every protected route: unknown or revoked is a 401, whatever
API_KEYS_REQUIRED says. With no key, the caller is anonymous, identified by its address
(``ip:<address>``, see :mod:`services.gateway.clientip`), unless the route is a task
endpoint and API_KEYS_REQUIRED is true: then 401 too.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from services.gateway.apikeys import ApiKey
from services.gateway.clientip import anonymous_identity, client_address
from services.gateway.errors import ApiError
from services.gateway.policy import policy_for
from services.gateway.state import API_KEY, API_KEYS, IDENTITY, SETTINGS
from shared.http import Handler

log = structlog.get_logger("gateway.auth")

#: Sent with every 401, as RFC 6750 asks of a bearer-token API.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="api"'}


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers=CHALLENGE)


def presented_key(request: web.Request) -> str | None:
    """The key the request carries, if any; 401 for a malformed or contradictory one."""
    authorization = request.headers.get("Authorization")
    header_key = request.headers.get("X-API-Key")
    bearer = None
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("invalid_authorization", "Authorization must be 'Bearer <API key>'")
        bearer = token.strip()
    if bearer is not None and header_key is not None and header_key.strip() != bearer:
        raise _unauthorized(
            "invalid_authorization", "Authorization and X-API-Key carry different keys"
        )
    key = bearer if bearer is not None else header_key
    return key.strip() if key is not None else None


async def authenticate(request: web.Request, key: str) -> ApiKey:
    """The record of a valid key; 401 for an unknown or revoked one."""
    record = await request.app[API_KEYS].lookup(key)
    if record is None:
        log.info("api_key_rejected", reason="unknown", path=request.path)
        raise _unauthorized("invalid_api_key", "the API key is not valid")
    if record.revoked:
        log.info("api_key_rejected", reason="revoked", prefix=record.prefix, path=request.path)
        raise _unauthorized("api_key_revoked", f"the API key {record.prefix} has been revoked")
    return record


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set IDENTITY (and API_KEY for a keyed caller) on protected routes, or answer 401."""
    policy = policy_for(request)
    if policy is None:
        return await handler(request)
    settings = request.app[SETTINGS]
    key = presented_key(request)
    if key is not None:
        record = await authenticate(request, key)
        request[API_KEY] = record
        request[IDENTITY] = record.identity
    elif policy.tasks and settings.api_keys_required:
        raise _unauthorized(
            "missing_api_key", "an API key is required: Authorization: Bearer <key>"
        )
    else:
        request[IDENTITY] = anonymous_identity(client_address(request, settings.trusted_proxies))
    return await handler(request)
