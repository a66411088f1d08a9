"""Typed application state (``web.AppKey``) and request keys shared by the handler modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from services.gateway.apikeys import ApiKey, ApiKeys
from services.gateway.settings import GatewaySettings
from shared.events import EventHub
from shared.store import TaskStore

SETTINGS = web.AppKey("settings", GatewaySettings)
REDIS = web.AppKey("redis", Redis)
STORE = web.AppKey("store", TaskStore)
API_KEYS = web.AppKey("api_keys", ApiKeys)
SUBMISSION_KINDS = web.AppKey("submission_kinds", tuple)
OPENAPI_SPEC = web.AppKey("openapi_spec", dict[str, Any])
#: The process's one pub/sub connection for task events (shared.events).
EVENT_HUB = web.AppKey("event_hub", EventHub)

#: Request key holding the caller's identity, ``key:<prefix>`` or ``ip:<address>``, set by
#: the auth middleware on protected routes; submissions store it as ``Task.owner`` and
#: only that identity may read or list the task.
IDENTITY = web.RequestKey("identity", str)
#: The caller's API key record, when it sent a valid one (its own rate limits).
API_KEY = web.RequestKey("api_key", ApiKey)
