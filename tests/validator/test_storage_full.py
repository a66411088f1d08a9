"""The validator over a full Redis (maxmemory reached, noeviction): a task in flight waits,
its entry held and heartbeated, never failed, and completes once Redis has room again."""

from __future__ import annotations

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.validator.consumer import HANDED_BACK_IDLE_MS, StreamQueue
from shared import keys
from shared.redis import storage_full
from shared.store import TaskStore
from shared.tasks import Priority, Status
from tests.fullredis import fill, make_room
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def test_holding_and_finishing_an_entry_needs_no_memory(small):
    """What keeps a waiting task safe: group set-up (groups exist), reading, heartbeating,
    handing back and finishing all work while every write that needs memory is refused."""
    queue = StreamQueue(small, "replica-a")
    await queue.ensure_groups()
    kept, finished = await create_task(small), await create_task(small)
    await fill(small)
    with pytest.raises(RedisError) as refused:
        await small.set("probe", "x")
    assert storage_full(refused.value)
    await queue.ensure_groups()  # a replica starting now: the groups are only read
    first, second = await queue.take(), await queue.take()
    assert {first.task_id, second.task_id} == {kept.task_id, finished.task_id}
    assert await queue.touch(first) is True
    assert await queue.release(first) is True  # shutdown: handed back, still pending
    await queue.finish(second)
    stream = keys.stream(Priority.NORMAL)
    entries = await small.xrange(stream)
    assert [fields[b"task_id"].decode() for _, fields in entries] == [first.task_id]
    [pending] = await small.xpending_range(stream, keys.CONSUMER_GROUP, "-", "+", 10)
    assert pending["time_since_delivered"] >= HANDED_BACK_IDLE_MS


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_a_task_waits_while_redis_is_full_and_completes_once_it_has_room(
    full_server, small, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    # The suite's validator settings (tests/validator/conftest.py); this test changes none.
    settings = validator_settings(full_server.url, write_miners(tmp_path / "m.json", [miner]))
    base = f"http://127.0.0.1:{settings.validator_port}"
    # As left by an earlier validator run: the groups exist, one task is queued. Then Redis
    # fills up, and a validator (re)starts.
    await StreamQueue(small, "earlier-run").ensure_groups()
    task = await create_task(small)
    await fill(small)
    async with running(settings, validator_wallet, name="replica-a") as app:
        c = components(app)

        async def refused_repeatedly() -> bool:
            # 0.5 + 1 + 2 s of backoff: the task has been held through several refusals.
            return await _value(c, "task") >= 3

        await eventually(refused_repeatedly, within=60)
        health = await get_json(f"{base}/health")
        assert health["status"] == "ok" and health["dead_loops"] == []
        assert health["in_flight"] == 1 and health["waiting_for_storage"] == 1
        assert health["redis_memory"]["ratio"] > 1
        held = await TaskStore(small, 60).get(task.task_id)
        assert held.status is Status.PROCESSING and held.attempts == 0 and held.error is None
        pending = await small.xpending_range(
            keys.stream(Priority.NORMAL), keys.CONSUMER_GROUP, "-", "+", 10
        )
        assert [(p["consumer"], p["times_delivered"]) for p in pending] == [(b"replica-a", 1)]

        await make_room(small)
        done = await wait_final(small, task.task_id)
        assert done.status is Status.COMPLETED and done.attempts == 1
        # The entry is acknowledged and deleted just after the task completes.
        await eventually(_not_in_flight(c, small))
        health = await get_json(f"{base}/health")
        assert health["waiting_for_storage"] == 0 and health["redis_memory"]["ratio"] < 1
        assert (
            c.metrics.value("validator_tasks_total", task_type="summarization", outcome="completed")
            == 1
        )
        assert await _value(c, "netstats") > 0


async def test_a_validator_starting_on_a_full_redis_without_groups_waits_for_room(
    full_server, small, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    settings = validator_settings(full_server.url, write_miners(tmp_path / "m.json", [miner]))
    await fill(small)  # a fresh Redis, filled by another tenant: no consumer group yet
    async with running(settings, validator_wallet) as app:
        c = components(app)
        await eventually(lambda: _value(c, "consumer"), within=30)
        health = await get_json(f"http://127.0.0.1:{settings.validator_port}/health")
        assert health["status"] == "ok" and health["dead_loops"] == []
        await make_room(small)
        task = await create_task(small)
        assert (await wait_final(small, task.task_id, within=30)).status is Status.COMPLETED


async def _value(c, loop: str) -> float:
    return c.metrics.value("validator_storage_full_total", loop=loop)


def _not_in_flight(c, redis: Redis):
    async def check() -> bool:
        empty = await redis.xlen(keys.stream(Priority.NORMAL)) == 0
        return empty and not c.pool.tasks and not c.storage_wait.waiting

    return check
