"""Network statistics for the gateway's /health and /stats, published in keys.NETWORK_STATS.

Fields: total_miners, available_miners (not resting after failures), total_stake (sum of the
miners' stake in the subnet's unit; 0 in static mode), connectivity (available / total, 0..1)
and last_sync (ISO 8601 time of the last successful miner-list refresh). The hash expires
when no validator refreshes it, so the gateway shows "unknown" rather than stale figures.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.validator.metrics import Metrics
from services.validator.miners import MinerRegistry
from services.validator.minerstats import MinerStats
from services.validator.selection import SelectionPolicy, resting
from services.validator.storagefull import refused
from shared import keys
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import REDIS_DOWN_ERRORS, wait_for_redis
from shared.tasks import iso

log = get_logger("validator.netstats")


async def publish(
    redis: Redis,
    registry: MinerRegistry,
    stats: MinerStats,
    policy: SelectionPolicy,
    metrics: Metrics,
    ttl: int,
) -> dict[str, str]:
    """Compute and store the statistics once; returns what was stored."""
    miners = registry.miners
    states = await stats.states([m.hotkey for m in miners])
    now = time.time()
    available = sum(1 for m in miners if not resting(states[m.hotkey], policy, now))
    total = len(miners)
    figures = {
        "total_miners": str(total),
        "available_miners": str(available),
        "total_stake": f"{sum(m.stake for m in miners):.4f}",
        "connectivity": f"{available / total:.3f}" if total else "0.000",
        "last_sync": iso(registry.last_sync) or "",
    }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.NETWORK_STATS, mapping=figures)
        pipe.expire(keys.NETWORK_STATS, ttl)
        await pipe.execute()
    metrics.miners.labels("total").set(total)
    metrics.miners.labels("available").set(available)
    return figures


async def run(
    redis: Redis,
    registry: MinerRegistry,
    stats: MinerStats,
    policy: SelectionPolicy,
    metrics: Metrics,
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Publish every ``interval`` seconds until ``stop``."""
    ttl = max(60, int(interval * 4))
    while not stop.is_set():
        try:
            await publish(redis, registry, stats, policy, metrics, ttl)
        except REDIS_DOWN_ERRORS as exc:
            log.warning("netstats_redis_unavailable", error=str(exc))
            await wait_for_redis(redis, stop=stop)
            continue
        except RedisError as exc:
            if not refused(exc, "netstats", metrics):
                raise
        if await pause(stop, interval):
            return
