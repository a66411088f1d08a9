"""shared.redispack: create_redis' connections pack commands with hiredis, and what they
send means to the real redis-server what redis-py's own packer would have sent."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from shared.redis import create_redis
from shared.redispack import HiredisPacking

VALUES = ["text", "é ü", b"\x00\xffbytes", bytearray(b"array"), memoryview(b"view"), 7, -3]
VALUES += [2**70, 1.5, 0.1 + 0.2, 1e20]


def test_the_packed_bytes_are_redis_pys_own():
    plain = Connection()
    for value in VALUES:
        packed = b"".join(HiredisPacking.pack_command(plain, "SET", "k", value))
        assert packed == b"".join(plain.pack_command("SET", "k", value)), value


async def test_create_redis_connections_use_it_and_round_trip(redis_settings):
    client = create_redis(redis_settings)
    try:
        assert issubclass(client.connection_pool.connection_class, HiredisPacking)
        for i, value in enumerate(VALUES):
            await client.set(f"audio:test:pack:{i}", value)
            stored = await client.get(f"audio:test:pack:{i}")
            expected = value.encode() if isinstance(value, str) else value
            if isinstance(value, int | float):
                expected = (repr(value) if isinstance(value, float) else str(value)).encode()
            assert stored == bytes(expected)
        with pytest.raises(DataError):
            await client.set("audio:test:pack:bool", True)
    finally:
        await client.aclose()
