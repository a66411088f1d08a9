"""The end of a task through outages and failovers (services/validator/finality.py), against
real redis-server processes: a master with one replica, and a Redis that is stopped and
started again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devnet.redis_server import RedisServer
from devnet.sentinel import SentinelGroup
from services.validator.finality import Finality
from services.validator.webhooks import delivery_id
from shared import keys
from shared.replication import Replication
from shared.store import TaskStore
from shared.tasks import Status, Task, TaskType, new_task_id

#: Shorter than the 1000 ms default, only so that each unconfirmed WAIT ends quickly.
SHORT_MS = 200


async def created(store: TaskStore, **fields: str) -> Task:
    task = Task(new_task_id(), TaskType.TTS, "en", **fields)
    await store.create(task, b"input")
    assert await store.transition(task.task_id, Status.PROCESSING, expect=[Status.PENDING])
    return task


async def test_a_completion_counts_once_replicas_confirm_it_and_is_rewritten_if_lost(
    sentinel_group: SentinelGroup, sentinel_master: Redis, tmp_path: Path
):
    # Two replicas wanted, one there: the completion cannot be confirmed yet.
    store = TaskStore(sentinel_master, 60, replication=Replication(2, SHORT_MS))
    task = await created(TaskStore(sentinel_master, 60))
    finality = Finality(sentinel_master, store)
    result = json.dumps({"model_used": "m"})
    finishing = asyncio.create_task(
        finality.finalize(
            task.task_id,
            Status.COMPLETED,
            expect=[Status.PENDING, Status.PROCESSING],
            fields={"result": result},
            output=b"out",
        )
    )
    key = keys.task(task.task_id)
    for _ in range(600):  # the first write lands at once; WAIT then holds it unconfirmed
        if await sentinel_master.hget(key, "status") == b"completed":
            break
        await asyncio.sleep(0.05)
    # As if a failover had lost it: the master's copy is back to processing.
    await sentinel_master.hset(key, mapping={"status": "processing", "result": ""})
    await asyncio.sleep(3 * SHORT_MS / 1000)
    assert not finishing.done()  # still waiting for a second replica
    second = RedisServer(
        tmp_path / "second",
        aof=False,
        options=("--replicaof", "127.0.0.1", str(sentinel_group.first_master)),
    ).start()
    try:
        assert await asyncio.wait_for(finishing, 30) is True
        async with Redis(port=second.port) as replica:
            assert await replica.hget(key, "status") == b"completed"
            assert await replica.hget(key, "result") == result.encode()
    finally:
        second.stop(kill=True)  # a throwaway replica: no clean shutdown needed


async def test_another_final_status_is_not_claimed(sentinel_master: Redis):
    store = TaskStore(sentinel_master, 60, replication=Replication(1))
    task = await created(store)
    assert await store.transition(
        task.task_id, Status.FAILED, expect=[Status.PROCESSING], fields={"error": "other"}
    )
    finality = Finality(sentinel_master, store)
    moved = await finality.finalize(
        task.task_id, Status.COMPLETED, expect=[Status.PROCESSING], fields={"result": "{}"}
    )
    assert moved is False
    assert (await store.get(task.task_id)).status == Status.FAILED


async def test_an_entry_is_settled_once_status_and_webhook_are_replicated(
    sentinel_master: Redis,
):
    store = TaskStore(sentinel_master, 60, replication=Replication(1))
    finality = Finality(sentinel_master, store)
    task = await created(store, callback_url="https://example.com/hook")
    assert not await finality.settled(task.task_id)  # still processing
    await store.transition(task.task_id, Status.COMPLETED, expect=[Status.PROCESSING])
    assert not await finality.settled(task.task_id)  # its webhook is not queued
    await sentinel_master.hset(
        keys.webhook(delivery_id(task.task_id, Status.COMPLETED)), "state", "pending"
    )
    assert await finality.settled(task.task_id)
    assert await finality.settled(new_task_id())  # no such task: nothing to keep


async def test_work_interrupted_by_an_outage_is_done_again_then_acknowledged(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", aof=False).start()
    redis = Redis(port=server.port)
    finality = Finality(redis, TaskStore(redis, 60))
    calls: list[str] = []

    async def work() -> None:
        calls.append("work")
        await redis.incr("audio:probe")

    async def acknowledge() -> None:
        calls.append("ack")

    try:
        server.stop(kill=True)
        holding = asyncio.create_task(finality.hold("t", work, acknowledge))
        await asyncio.sleep(1.0)
        assert calls and "ack" not in calls  # waiting for Redis, entry kept
        server.start()
        await asyncio.wait_for(holding, 30)
        assert calls.count("ack") == 1 and calls[-2:] == ["work", "ack"]
        assert int(await redis.get("audio:probe")) == 1
    finally:
        await redis.aclose()
        server.stop()


async def test_hold_does_not_swallow_other_errors(redis: Redis):
    finality = Finality(redis, TaskStore(redis, 60))

    async def work() -> None:
        raise ValueError("a bug")

    async def acknowledge() -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="a bug"):
        await finality.hold("t", work, acknowledge)
