"""The event hub's pub/sub connection through a network that fails silently."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from devnet.redis_server import RedisServer
from shared import events, keys
from shared.events import EventHub
from shared.redis import create_redis
from shared.settings import RedisSettings, load_settings
from shared.tasks import new_task_id
from tests.linkrelay import LinkRelay


async def until(condition, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_a_silent_connection_is_dropped_and_the_hub_subscribes_again(
    redis_server: RedisServer, redis: Redis
):
    """A partition resets nothing: without its PING the hub would sit on a dead socket for
    the OS's retransmission timeout (about 15 minutes). At the shipped PING_AFTER and
    PONG_TIMEOUT it notices, wakes its watchers and, once the network is back, subscribes
    again, so publications wake watchers once more."""
    print(f"event hub: PING_AFTER={events.PING_AFTER} PONG_TIMEOUT={events.PONG_TIMEOUT}")
    relay = await LinkRelay(redis_server.port).start()
    url = f"redis://127.0.0.1:{relay.port}/0"
    client = create_redis(load_settings(RedisSettings, {"REDIS_URL": url}))
    hub, stop = EventHub(client), asyncio.Event()
    loop = asyncio.create_task(hub.run(stop))
    task_id = new_task_id()
    channel = keys.task_channel(task_id)
    try:
        await until(lambda: hub.connected)
        async with hub.watch(task_id) as watch:
            await watch.wait(0)  # the wake of the first connection, if any
            relay.cut()
            await until(lambda: not hub.connected)
            assert await watch.wait(0), "a dropped connection wakes every watcher"
            relay.heal()
            await until(lambda: hub.connected)
            await watch.wait(0)  # the reconnection's wake
            # SUBSCRIBE is sent, not yet confirmed: publish until the new subscription hears.
            woken = False
            for _ in range(25):
                await redis.publish(channel, "1")
                if woken := await watch.wait(0.2):
                    break
            assert woken, "a publication after the partition wakes the watcher"
    finally:
        stop.set()
        await loop
        await client.aclose()
        await relay.close()
