"""The queue collector: every QUEUE_METRICS_INTERVAL seconds, queue depth and oldest age
per priority from Redis into the gateway's gauges (gateway_queue_depth,
gateway_queue_oldest_age_seconds), and gateway_redis_up.

Periodic, in the background, rather than per request or per scrape: submissions pay
nothing for it, and a scrape never waits on Redis for it. Each gateway process (each
gunicorn worker too) runs one; the reads are one script call per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from services.gateway.metrics import METRICS, QueueGauges
from services.gateway.state import REDIS, SETTINGS
from shared.periodic import pause
from shared.queues import QueueReader

log = structlog.get_logger("gateway.admin.collector")

QUEUE_GAUGES = web.AppKey("queue_gauges", QueueGauges)
QUEUE_READER = web.AppKey("queue_reader", QueueReader)


async def collect(app: web.Application, stop: asyncio.Event) -> None:
    """Refresh the gauges until ``stop``; an unreachable Redis is logged once per outage."""
    settings, metrics = app[SETTINGS], app[METRICS]
    gauges, reader = app[QUEUE_GAUGES], app[QUEUE_READER]
    reachable = True
    while True:
        try:
            async with asyncio.timeout(settings.health_timeout):
                figures = await reader.read()
        except (TimeoutError, RedisError, OSError) as exc:
            metrics.redis_up.set(0)
            if reachable:
                log.warning("queue_metrics_redis_unreachable", error=str(exc) or type(exc).__name__)
            reachable = False
        else:
            gauges.show(figures, time.time())
            metrics.redis_up.set(1)
            if not reachable:
                log.info("queue_metrics_redis_back")
            reachable = True
        if await pause(stop, settings.queue_metrics_interval):
            return


async def queue_collector(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the collector runs as long as the app (after the Redis pool opened)."""
    app[QUEUE_GAUGES] = QueueGauges(app[METRICS].registry)
    app[QUEUE_READER] = QueueReader(app[REDIS])
    stop = asyncio.Event()
    task = asyncio.create_task(collect(app, stop), name="gateway-queue-collector")
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
