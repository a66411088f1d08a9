"""Commands packed by hiredis (C) on redis.asyncio connections.

redis-py's synchronous client packs commands with hiredis when it is installed, but its
asyncio connections always use the pure-Python packer. The create script has some twenty
keys and arguments, and packing them was a tenth of the gateway's CPU per submission
(py-spy): hiredis.pack_command gives the same bytes (same encodings of str, int and
float; bool and None refused as redis-py's Encoder refuses them) at a quarter of the cost.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from redis.asyncio import Redis
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_SERIALIZER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None


class HiredisPacking:
    """Mixed in before a redis.asyncio connection class: its pack_command by hiredis."""

    def pack_command(self, *args: Any) -> list[bytes]:
        assert _SERIALIZER is not None
        return _SERIALIZER.pack(*args)


@lru_cache(maxsize=8)
def _packing(base: type) -> type:
    return type(f"Hiredis{base.__name__}", (HiredisPacking, base), {})


def use_hiredis_packing(client: Redis) -> Redis:
    """``client`` with hiredis packing on the connections its pool makes from now on
    (unchanged without hiredis). Call before the first command."""
    pool = client.connection_pool
    if _SERIALIZER is not None and not issubclass(pool.connection_class, HiredisPacking):
        pool.connection_class = _packing(pool.connection_class)
    return client
