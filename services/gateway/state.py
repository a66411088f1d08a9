"""Typed application state (``web.AppKey``) and request keys shared by the handler modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from services.gateway.settings import GatewaySettings
from shared.store import TaskStore

SETTINGS = web.AppKey("settings", GatewaySettings)
REDIS = web.AppKey("redis", Redis)
STORE = web.AppKey("store", TaskStore)
SUBMISSION_KINDS = web.AppKey("submission_kinds", tuple)
OPENAPI_SPEC = web.AppKey("openapi_spec", dict[str, Any])

#: Request key holding the caller's identity. Nothing sets it yet: the API-key middleware
#: of a later issue will, and submissions already store it as ``Task.owner``.
IDENTITY = web.RequestKey("identity", str)
