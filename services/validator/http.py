"""The validator's small HTTP port: /health for Kubernetes probes, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.redis import REDIS_DOWN_ERRORS, memory_use

if TYPE_CHECKING:
    from services.validator.app import Components


@dataclass
class Liveness:
    """The background loops; the process is unhealthy once one has died unexpectedly."""

    loops: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def dead(self) -> list[str]:
        return sorted(name for name, task in self.loops.items() if task.done())


COMPONENTS: web.AppKey[Components] = web.AppKey("components")
LIVENESS = web.AppKey("liveness", Liveness)


async def health(request: web.Request) -> web.Response:
    """200 while every loop runs (Redis being away is reported, not fatal: the validator
    waits for it); 503 when a loop has died and the pod should be restarted."""
    components, liveness = request.app[COMPONENTS], request.app[LIVENESS]
    memory = None
    try:
        async with asyncio.timeout(1.0):
            await components.redis.ping()
            memory = await memory_use(components.redis)
        redis_state = "ok"
    except (TimeoutError, *REDIS_DOWN_ERRORS):
        redis_state = "unavailable"
    dead = liveness.dead()
    body = {
        "status": "ok" if not dead else "failing",
        "redis": redis_state,
        "consumer": components.queue.consumer,
        "in_flight": len(components.pool.tasks),
        # Redis full (maxmemory): tasks held, waiting to write; not a reason to restart.
        "waiting_for_storage": len(components.storage_wait.waiting),
        "redis_memory": memory.as_dict() if memory else None,
        "miners": len(components.registry.miners),
        "mode": "chain" if components.settings.chain_mode else "static",
        "dead_loops": dead,
    }
    return web.json_response(body, status=200 if not dead else 503)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[COMPONENTS].metrics.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [web.get("/health", health), web.get("/metrics", metrics)]
