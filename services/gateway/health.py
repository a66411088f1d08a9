"""GET /api/v1/health: 200 with Redis, queue and network status; 503 when Redis is down.

Redis' memory against maxmemory is reported, but a full Redis stays "healthy" (200): reads
still work and submissions answer 503 ``storage_full`` themselves, while failing the probe
would take every gateway out of its load balancer and turn those answers into refused
connections."""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from services.gateway.errors import RETRY_AFTER
from services.gateway.openapi import json_content, operation
from services.gateway.responses import Health
from services.gateway.state import REDIS, SETTINGS, STORE
from services.gateway.stats import read_network
from shared.redis import memory_use
from shared.tasks import iso, now

log = structlog.get_logger("gateway.health")


@operation(
    "Liveness and readiness: Redis, queues, network",
    tags=["monitoring"],
    responses={
        "200": {"description": "healthy", "content": json_content(Health)},
        "503": {
            "description": "Redis is unreachable (status unhealthy, with an error object)",
            "content": json_content(Health),
        },
    },
)
async def health(request: web.Request) -> web.Response:
    """Answers within HEALTH_TIMEOUT seconds either way, so probes never hang on Redis."""
    redis, store = request.app[REDIS], request.app[STORE]
    try:
        async with asyncio.timeout(request.app[SETTINGS].health_timeout):
            start = time.perf_counter()
            await redis.ping()
            latency_ms = round((time.perf_counter() - start) * 1000, 2)
            counts = await store.counts()
            queues = await store.queue_sizes()
            network = await read_network(redis)
            memory = await memory_use(redis)
    except (TimeoutError, RedisError) as exc:
        log.warning("health_redis_unreachable", error=str(exc) or type(exc).__name__)
        return web.json_response(
            {
                "status": "unhealthy",
                "timestamp": iso(now()),
                "redis": {"status": "unreachable"},
                "error": {
                    "code": "redis_unavailable",
                    "message": "Redis is unreachable",
                    "field": None,
                },
            },
            status=503,
            headers={"Retry-After": RETRY_AFTER},
        )
    return web.json_response(
        {
            "status": "healthy",
            "timestamp": iso(now()),
            "redis": {
                "status": "connected",
                "latency_ms": latency_ms,
                "memory": memory.as_dict() if memory else None,
            },
            "queue": {**counts, "queue_size": sum(queues.values()), "queues": queues},
            "network": network,
        }
    )
