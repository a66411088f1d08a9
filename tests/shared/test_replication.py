"""REDIS_MIN_REPLICAS_ACK: writes confirmed by Redis WAIT on the connection that made them,
against a real master with one replica (so asking for two replicas cannot be confirmed)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from devnet.sentinel import SentinelGroup
from shared import keys
from shared.replication import NO_REPLICATION, NotReplicated, Replication
from shared.store import TaskStore
from shared.tasks import Status, Task, TaskType, new_task_id

#: Shorter than the 1000 ms default, only so that the unconfirmable cases end quickly.
SHORT_MS = 200


def replica_port(group: SentinelGroup) -> int:
    return next(port for port in group.nodes if port != group.first_master)


async def test_a_confirmed_write_is_on_the_replica_when_it_returns(
    sentinel_group: SentinelGroup, sentinel_master: Redis
):
    store = TaskStore(sentinel_master, 60, replication=Replication(1))
    task = Task(new_task_id(), TaskType.TTS, "en")
    await store.create(task, b"hello")
    async with Redis(port=replica_port(sentinel_group)) as replica:
        # No polling: WAIT returned only once the replica had acknowledged the write.
        assert await replica.hget(keys.task(task.task_id), "status") == b"pending"
        assert await replica.xlen(keys.stream(task.priority)) == 1


async def test_an_unconfirmed_write_raises_with_what_the_master_did(sentinel_master: Redis):
    store = TaskStore(sentinel_master, 60, replication=Replication(2, SHORT_MS))
    task = Task(new_task_id(), TaskType.TTS, "en")
    with pytest.raises(NotReplicated) as caught:
        await store.create(task, b"hello")
    assert (caught.value.acked, caught.value.wanted) == (1, 2)
    assert int(caught.value.reply[0]) == 1  # stored on the master
    assert await sentinel_master.hget(keys.task(task.task_id), "status") == b"pending"


async def test_a_withdrawn_task_is_final_without_a_callback(sentinel_master: Redis):
    store = TaskStore(sentinel_master, 60, replication=Replication(2, SHORT_MS))
    task = Task(new_task_id(), TaskType.TTS, "en", callback_url="https://example.com/hook")
    with pytest.raises(NotReplicated):
        await store.create(task, b"hello")
    await sentinel_master.set("audio:idempotency:x:y", "claim")
    assert await store.withdraw(task.task_id, "not accepted", "audio:idempotency:x:y")
    stored = await store.get(task.task_id)
    assert stored is not None
    assert (stored.status, stored.error, stored.callback_url) == (
        Status.FAILED,
        "not accepted",
        "",
    )
    assert await sentinel_master.exists("audio:idempotency:x:y") == 0
    assert not await store.withdraw(task.task_id, "again")  # already final


async def test_scripts_are_reloaded_on_noscript_in_the_waited_pipeline(sentinel_master: Redis):
    store = TaskStore(sentinel_master, 60, replication=Replication(1))
    first = Task(new_task_id(), TaskType.TTS, "en")
    await store.create(first, b"a")
    await sentinel_master.script_flush()  # as on a freshly promoted master
    second = Task(new_task_id(), TaskType.TTS, "en")
    await store.create(second, b"b")
    assert await store.transition(second.task_id, Status.PROCESSING, expect=[Status.PENDING])
    assert (await store.get(second.task_id)).status == Status.PROCESSING


async def test_fence_confirms_what_was_read(sentinel_master: Redis):
    await sentinel_master.set("audio:probe", "v")
    (value,) = await Replication(1).fence(sentinel_master, lambda pipe: pipe.get("audio:probe"))
    assert value == b"v"
    with pytest.raises(NotReplicated) as caught:
        await Replication(2, SHORT_MS).fence(sentinel_master, lambda p: p.get("audio:probe"))
    assert caught.value.reply == [b"v"] and caught.value.acked == 1


async def test_without_replicas_to_wait_for_nothing_is_added(redis: Redis):
    # The default: the script alone, no WAIT, no fence key (a lone Redis has no replica).
    await redis.config_resetstat()
    store = TaskStore(redis, 60, replication=NO_REPLICATION)
    await store.create(Task(new_task_id(), TaskType.TTS, "en"), b"a")
    assert await redis.exists(keys.REPLICATION_FENCE) == 0
    info = await redis.info("commandstats")
    assert "cmdstat_wait" not in info
