"""redis-py parses replies with hiredis (a gateway, validator and devnet dependency): the
parser in C, which redis-py picks whenever the package is installed."""

from __future__ import annotations

from redis._parsers import _AsyncHiredisParser
from redis.utils import HIREDIS_AVAILABLE

from shared.redis import create_redis
from shared.settings import RedisSettings, load_settings


async def test_the_services_redis_client_parses_with_hiredis(redis_url):
    assert HIREDIS_AVAILABLE, "hiredis is not installed: pip install -e '.[gateway]'"
    client = create_redis(load_settings(RedisSettings, {"REDIS_URL": redis_url}))
    try:
        assert await client.set("parser-check", b"\x00\xff") is True
        assert await client.get("parser-check") == b"\x00\xff"
        connection = await client.connection_pool.get_connection()
        try:
            assert isinstance(connection._parser, _AsyncHiredisParser)
        finally:
            await client.connection_pool.release(connection)
    finally:
        await client.aclose()
