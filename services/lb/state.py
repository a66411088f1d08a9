"""Typed application state (``web.AppKey``) shared by the LB's modules."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from services.lb.instances import InstancePool
from services.lb.metrics import LbMetrics
from services.lb.settings import LbSettings

SETTINGS = web.AppKey("settings", LbSettings)
POOL = web.AppKey("pool", InstancePool)
METRICS = web.AppKey("metrics", LbMetrics)
#: One client session (one connection pool) for health checks and proxied requests.
SESSION = web.AppKey("session", aiohttp.ClientSession)
HEALTH_TASK = web.AppKey("health_task", asyncio.Task)
