"""Redis client factory (redis.asyncio) and a wait-until-reachable loop."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.periodic import pause
from shared.settings import RedisSettings

#: Errors meaning "Redis is not reachable right now"; services wait and retry on these.
REDIS_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def create_redis(settings: RedisSettings, *, socket_timeout: float = 10.0) -> Redis:
    """A pooled client that retries briefly on connection errors.

    ``socket_timeout`` must exceed any blocking command's BLOCK time, or redis.asyncio
    raises a timeout on an idle but healthy connection.
    """
    return Redis.from_url(
        settings.redis_dsn,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


async def wait_for_redis(
    redis: Redis, *, max_delay: float = 5.0, stop: asyncio.Event | None = None
) -> bool:
    """Ping until Redis answers, backing off; never gives up. False if ``stop`` was set."""
    log = structlog.get_logger("redis")
    delay = 0.1
    while True:
        try:
            await redis.ping()
            return True
        except REDIS_DOWN_ERRORS as exc:
            log.warning("redis_unreachable", error=str(exc), retry_in=round(delay, 2))
        if stop is None:
            await asyncio.sleep(delay)
        elif await pause(stop, delay):
            return False
        delay = min(delay * 2, max_delay)
