"""Redis client factory (redis.asyncio, direct or through Sentinel), the errors that mean
"Redis is away or switching masters", a wait-until-reachable loop, and what services need
to know about a Redis that is full (maxmemory reached): how to recognise its refusal and
how much memory it uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.periodic import pause
from shared.redispack import use_hiredis_packing
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
        return use_hiredis_packing(Redis.from_url(settings.redis_dsn, **options))
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        sentinel_kwargs={
            "password": settings.redis_sentinel_password,
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "retry": Retry(NoBackoff(), 0),  # a Sentinel that is down: ask the next one
        },
    )
    master = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=SentinelMaster,
        connection_class=FailoverAwareConnection,
        db=settings.redis_db,
        password=settings.redis_password,
        **options,
    )
    return use_hiredis_packing(master)


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


# Redis' words when it refuses a command at maxmemory (maxmemory-policy noeviction). A plain
# command or a MULTI raises OutOfMemoryError, but inside a Lua script Redis 6.2 wraps the
# refusal in a generic "Error running script ... -OOM command not allowed ..." error, so
# that one is recognised by its text (Redis 7 says the same words).
_OOM_TEXT = "command not allowed when used memory"


#: Backoff while Redis refuses writes (seconds, first wait and longest): memory comes back
#: as tasks finish and results expire or when an operator acts; work resumes soon after.
FULL_RETRY_FIRST = 0.5
FULL_RETRY_MAX = 5.0


def storage_full(exc: BaseException) -> bool:
    """True when ``exc`` is Redis refusing a write because it has reached maxmemory.

    Nothing was written then: Redis checks before a command runs, and a script is refused
    at its first write that needs memory, never halfway. Reads, deletions and stream
    acknowledgements still work, so it is a transient condition, not a failure of the data.
    """
    if isinstance(exc, OutOfMemoryError):
        return True
    return isinstance(exc, ResponseError) and _OOM_TEXT in str(exc)


@dataclass(frozen=True)
class MemoryUse:
    """Redis' memory against its limit, from INFO memory."""

    used_memory: int  # bytes
    maxmemory: int  # bytes; 0 means no limit
    policy: str  # maxmemory-policy; only noeviction refuses writes (the others evict data)

    @property
    def ratio(self) -> float | None:
        """used / max (1 or more: writes are refused), None without a limit."""
        return round(self.used_memory / self.maxmemory, 4) if self.maxmemory else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "used_memory": self.used_memory,
            "maxmemory": self.maxmemory,
            "ratio": self.ratio,
            "maxmemory_policy": self.policy,
        }


async def memory_use(redis: Redis) -> MemoryUse | None:
    """The figures, or None where INFO is not allowed (ACL users without @dangerous)."""
    try:
        info = await redis.info("memory")
    except ResponseError:
        return None
    return MemoryUse(
        int(info.get("used_memory", 0)),
        int(info.get("maxmemory", 0)),
        str(info.get("maxmemory_policy", "unknown")),
    )
