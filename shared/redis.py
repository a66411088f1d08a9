"""Redis client factory (redis.asyncio, direct or through Sentinel), the errors that mean
"Redis is away or switching masters", and a wait-until-reachable loop."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.periodic import pause
from shared.settings import RedisSettings

#: Redis errors that mean "not reachable right now" or "the master is changing": connection
#: and timeout errors (Sentinel's MasterNotFoundError, raised while no master is named, is a
#: ConnectionError), READONLY from a master demoted under an open connection (without
#: Sentinel; redis-py's Sentinel pool turns it into a ConnectionError and reconnects) and
#: MASTERDOWN from a replica that lost its master. Answered 503 + Retry-After; waited out.
REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, MasterDownError)
#: The same plus the OS-level errors a socket can raise; services wait and retry on these.
REDIS_DOWN_ERRORS = (*REDIS_UNAVAILABLE, ConnectionError, OSError)

#: Seconds one Sentinel has to answer: a Sentinel that is down must not delay the others.
SENTINEL_TIMEOUT = 1.0


class FailoverAwareConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, which drops a connection to a demoted master on
    READONLY and reconnects to the one the Sentinels name, also on READONLY from inside a
    Lua script: Redis 6.2 wraps that one in "Error running script ... -READONLY", which
    redis-py does not recognise, and every write here is a script."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if not self.connection_pool.is_master or "-READONLY " not in str(exc):
                raise
            await self.disconnect()
            raise RedisConnectionError("the previous master is now a replica") from exc


class SentinelMaster(Redis):
    """The master named by the Sentinels; closing it also closes the Sentinel clients."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def create_redis(settings: RedisSettings, *, socket_timeout: float = 10.0) -> Redis:
    """A pooled client that retries briefly on connection errors.

    With REDIS_SENTINELS set, redis-py's Sentinel support finds the master: every new
    connection asks the Sentinels for its address, so after a failover the next command
    (or its retry) reaches the new master. ``socket_timeout`` must exceed any blocking
    command's BLOCK time, or redis.asyncio raises a timeout on an idle but healthy connection.
    """
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_dsn, **options)
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        sentinel_kwargs={
            "password": settings.redis_sentinel_password,
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),  # a Sentinel that is down: ask the next one
        },
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=SentinelMaster,
        connection_class=FailoverAwareConnection,
        db=settings.redis_db,
        password=settings.redis_password,
        **options,
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
