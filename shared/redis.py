"""Redis client factory (redis.asyncio), a wait-until-reachable loop, and what services
need to know about a Redis that is full (maxmemory reached): how to recognise its refusal
and how much memory it uses."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
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
