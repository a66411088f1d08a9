"""REDIS_SENTINELS: settings, and a client that finds the master through real Sentinels and
follows it across a failover (scripts and the event hub's pub/sub included), against
redis-server processes on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError

from devnet.sentinel import SentinelGroup
from shared import keys
from shared.events import EventHub
from shared.redis import REDIS_UNAVAILABLE, SentinelMaster, create_redis
from shared.settings import RedisSettings, SettingsError, load_settings
from shared.store import TaskStore
from shared.tasks import Status, Task, TaskType, new_task_id


def sentinel_settings(group: SentinelGroup, **env: str) -> RedisSettings:
    return load_settings(
        RedisSettings, {"ENVIRONMENT": "test", "REDIS_SENTINELS": group.addresses, **env}
    )


def test_sentinel_addresses_are_parsed_and_deduplicated():
    s = load_settings(
        RedisSettings, {"REDIS_SENTINELS": " s-0:26379, [::1]:26380 ,s-0:26379,", "REDIS_DB": "3"}
    )
    assert s.redis_sentinels == (("s-0", 26379), ("::1", 26380))
    assert s.redis_sentinel_master == "mymaster"
    assert (s.redis_min_replicas_ack, s.redis_ack_timeout_ms) == (0, 1000)


@pytest.mark.parametrize("value", ["s-0", "s-0:port", "s-0:0", ":26379", ",", "s-0:26379,s-1"])
def test_bad_sentinel_addresses_name_the_variable(value: str):
    with pytest.raises(SettingsError, match=r"^REDIS_SENTINELS: "):
        load_settings(RedisSettings, {"REDIS_SENTINELS": value})


def test_sentinels_take_precedence_over_the_url(sentinel_group: SentinelGroup):
    settings = sentinel_settings(sentinel_group, REDIS_URL="redis://127.0.0.1:1/0")
    client = create_redis(settings)
    assert isinstance(client, SentinelMaster)
    assert client.connection_pool.service_name == "mymaster"
    assert isinstance(create_redis(load_settings(RedisSettings, {})), Redis)


async def test_the_client_reaches_the_master_the_sentinels_name(
    sentinel_group: SentinelGroup, sentinel_master: Redis
):
    client = create_redis(sentinel_settings(sentinel_group))
    try:
        await client.set("audio:probe", "1")
        assert await sentinel_master.get("audio:probe") == b"1"
        role = await client.execute_command("ROLE")
        assert role[0] == b"master"
    finally:
        await client.aclose()


async def test_passwords_reach_the_sentinels_and_the_master(tmp_path: Path):
    # Nodes and Sentinels with requirepass, as the Bitnami chart runs them (one password).
    group = SentinelGroup(tmp_path, replicas=0, sentinels=1, password="s3cret").start()
    settings = sentinel_settings(group, REDIS_PASSWORD="s3cret", REDIS_SENTINEL_PASSWORD="s3cret")
    client = create_redis(settings)
    try:
        await client.set("audio:probe", "1")
        assert await client.get("audio:probe") == b"1"
        # Without the Sentinels' password no master can be named: an outage, not a crash,
        # and the message says why.
        without = create_redis(sentinel_settings(group, REDIS_PASSWORD="s3cret"))
        with pytest.raises(MasterNotFoundError, match="AuthenticationError") as caught:
            await without.ping()
        assert isinstance(caught.value, REDIS_UNAVAILABLE)
        await without.aclose()
    finally:
        await client.aclose()
        group.stop()


async def test_an_unknown_master_name_is_an_outage_not_a_crash(sentinel_group: SentinelGroup):
    client = create_redis(sentinel_settings(sentinel_group, REDIS_SENTINEL_MASTER="nosuch"))
    try:
        with pytest.raises(MasterNotFoundError) as caught:
            await client.ping()
        assert isinstance(caught.value, REDIS_UNAVAILABLE)
    finally:
        await client.aclose()


async def test_a_demoted_master_answering_a_script_is_a_switch_not_an_error(
    sentinel_group: SentinelGroup, sentinel_master: Redis
):
    # A Sentinel that still names a node which has become a replica (it learns of a
    # failover a moment after the others): the client's scripts meet READONLY there.
    replica = next(port for port in sentinel_group.nodes if port != sentinel_group.first_master)
    sentinel = Redis(port=sentinel_group.sentinels[0].port)
    await sentinel.execute_command("SENTINEL", "MONITOR", "stale", "127.0.0.1", replica, 1)
    await sentinel.execute_command("SENTINEL", "SET", "stale", "down-after-milliseconds", 600000)
    client = create_redis(
        load_settings(
            RedisSettings,
            {
                "REDIS_SENTINELS": f"127.0.0.1:{sentinel_group.sentinels[0].port}",
                "REDIS_SENTINEL_MASTER": "stale",
            },
        )
    )
    try:
        with pytest.raises(REDIS_UNAVAILABLE) as caught:
            await TaskStore(client, 60).create(Task(new_task_id(), TaskType.TTS, "en"), b"x")
        assert "previous master is now a replica" in str(caught.value)
        assert await sentinel_master.keys("audio:task:*") == []
    finally:
        await client.aclose()
        await sentinel.execute_command("SENTINEL", "REMOVE", "stale")
        await sentinel.aclose()


async def subscribers(port: int, channel: str) -> int:
    """How many clients of the node on ``port`` are subscribed to ``channel``."""
    async with Redis(port=port) as node:
        ((_, count),) = await node.pubsub_numsub(channel)
    return count


async def until_subscribed(port: int, channel: str) -> None:
    """Until a client of the node on ``port`` subscribes to ``channel`` (10 s at most)."""
    for _ in range(200):
        if await subscribers(port, channel):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody subscribed to {channel} on port {port}")


async def test_the_client_follows_a_failover_and_scripts_reload(tmp_path: Path):
    group = SentinelGroup(tmp_path).start()
    client = create_redis(sentinel_settings(group))
    store = TaskStore(client, 3600)
    # The event hub (gateway and validators) holds one pub/sub connection of its own.
    hub, stop = EventHub(client), asyncio.Event()
    hub_loop = asyncio.create_task(hub.run(stop))
    try:
        before = Task(new_task_id(), TaskType.TTS, "en")
        await store.create(before, b"hello")
        old = group.first_master
        async with hub.watch(before.task_id) as watch:
            channel = keys.task_channel(before.task_id)
            await until_subscribed(old, channel)
            group.wait_for_replicas(1, old)
            # Sentinel's own failover command: the replica is promoted, the master demoted.
            direct = Redis(port=group.sentinels[0].port)
            await direct.execute_command("SENTINEL", "FAILOVER", "mymaster")
            await direct.aclose()
            new = await asyncio.to_thread(group.wait_for_master, old, 30)
            # Until the Sentinels reconfigure it, the old master still takes writes (and
            # loses them when it turns replica: REDIS_MIN_REPLICAS_ACK is the guard).
            await asyncio.to_thread(group.wait_for_role, old, "slave")
            # A new master may lack the scripts: flush them so NOSCRIPT is certain.
            async with Redis(port=new) as promoted:
                await promoted.script_flush()
            # The pooled connection still reaches the demoted master, which answers the
            # create script with READONLY: the client reconnects to the new one by itself.
            after = Task(new_task_id(), TaskType.TTS, "en")
            await store.create(after, b"world")
            async with Redis(port=new) as promoted:
                assert await promoted.hget(f"audio:task:{after.task_id}", "status") == b"pending"
                assert await promoted.hget(f"audio:task:{before.task_id}", "status") == b"pending"
                assert (await promoted.execute_command("ROLE"))[0] == b"master"
            assert (await client.execute_command("ROLE"))[0] == b"master"
            # The hub has subscribed again, on the new master, and a status change written
            # there wakes the watcher (the wake-up its reconnection gave is drained first).
            await until_subscribed(new, channel)
            assert await subscribers(old, channel) == 0
            await watch.wait(0)
            assert await store.transition(
                before.task_id, Status.PROCESSING, expect=[Status.PENDING]
            )
            assert await watch.wait(5)
    finally:
        stop.set()
        await hub_loop
        await client.aclose()
        group.stop()
