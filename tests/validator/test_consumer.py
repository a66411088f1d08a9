"""Taking work: strict priority, the in-flight cap, and shutdown that finishes or releases."""

from __future__ import annotations

from services.validator.consumer import HANDED_BACK_IDLE_MS
from shared import keys
from shared.store import TaskStore
from shared.tasks import PRIORITY_ORDER, Priority, Status
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def stream_state(redis) -> tuple[int, int]:
    """(entries left in all streams, entries pending in the group)."""
    length = pending = 0
    for p in PRIORITY_ORDER:
        length += await redis.xlen(keys.stream(p))
        if await redis.exists(keys.stream(p)):
            pending += (await redis.xpending(keys.stream(p), keys.CONSUMER_GROUP))["pending"]
    return length, pending


async def test_strict_priority_one_at_a_time(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    order = [Priority.LOW, Priority.NORMAL, Priority.LOW, Priority.URGENT, Priority.HIGH]
    tasks = [await create_task(redis, priority=p) for p in order]
    settings = validator_settings(
        redis_url,
        write_miners(tmp_path / "miners.json", [miner]),
        max_concurrent_tasks=1,
        max_miners_per_request=1,
    )
    async with running(settings, validator_wallet):
        for task in tasks:
            assert (await wait_final(redis, task.task_id)).status is Status.COMPLETED
    served = [entry["task_id"] for entry in miner.activity.accepted]
    by_priority = [tasks[3], tasks[4], tasks[1], tasks[0], tasks[2]]
    assert served == [t.task_id for t in by_priority]
    assert miner.activity.peak == 1
    # Finished entries are acknowledged and deleted: XLEN counts only waiting + in flight.
    assert await stream_state(redis) == (0, 0)


async def test_in_flight_tasks_never_exceed_the_cap(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0, latency=0.3)
    tasks = [await create_task(redis) for _ in range(6)]
    settings = validator_settings(
        redis_url,
        write_miners(tmp_path / "miners.json", [miner]),
        max_concurrent_tasks=2,
        max_miners_per_request=1,
    )
    async with running(settings, validator_wallet):
        for task in tasks:
            assert (await wait_final(redis, task.task_id)).status is Status.COMPLETED
    assert miner.activity.peak == 2
    assert len(miner.activity.accepted) == 6


async def test_a_burst_past_the_miners_cap_waits_for_capacity_instead_of_failing(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0, latency=0.3)
    tasks = [await create_task(redis) for _ in range(6)]
    settings = validator_settings(
        redis_url,
        write_miners(tmp_path / "miners.json", [miner]),
        max_concurrent_tasks=6,
        max_miners_per_request=1,
        miner_max_in_flight=2,
    )
    async with running(settings, validator_wallet):
        finals = [await wait_final(redis, task.task_id) for task in tasks]
    # Waiting for a busy miner spends no attempt: every task completes on its first.
    assert [(t.status, t.attempts) for t in finals] == [(Status.COMPLETED, 1)] * 6
    assert miner.activity.peak == 2


async def test_shutdown_lets_short_tasks_finish(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0, latency=0.5)
    tasks = [await create_task(redis) for _ in range(2)]
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "miners.json", [miner]), shutdown_grace=10
    )
    async with running(settings, validator_wallet):
        await eventually(lambda: _active(miner, 2))
    store = TaskStore(redis, 3600)
    for task in tasks:
        assert (await store.get(task.task_id)).status is Status.COMPLETED
    assert await stream_state(redis) == (0, 0)


async def test_shutdown_hands_back_what_cannot_finish_in_the_grace(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    slow = await start_miner(0, latency=1.5)
    tasks = [await create_task(redis) for _ in range(2)]
    miners_file = write_miners(tmp_path / "miners.json", [slow])
    settings = validator_settings(redis_url, miners_file, shutdown_grace=0.1, task_timeout=3)
    async with running(settings, validator_wallet):
        await eventually(lambda: _active(slow, 2))
    # Handed back, not lost: both entries are still pending, look long idle for the next
    # sweep, and the hand-back counted no delivery (nor, below, an attempt).
    assert await stream_state(redis) == (2, 2)
    pending = await redis.xpending_range(
        keys.stream(Priority.NORMAL), keys.CONSUMER_GROUP, "-", "+", 10
    )
    assert all(p["time_since_delivered"] >= HANDED_BACK_IDLE_MS for p in pending)
    assert [p["times_delivered"] for p in pending] == [0, 0]
    store = TaskStore(redis, 3600)
    for task in tasks:
        assert (await store.get(task.task_id)).status is Status.PROCESSING
    fast = await start_miner(1)
    # At the shipped reclaim settings the next replica takes them on its first sweep.
    settings = validator_settings(redis_url, write_miners(tmp_path / "fast.json", [fast]))
    async with running(settings, validator_wallet) as app:
        for task in tasks:
            final = await wait_final(redis, task.task_id)
            assert (final.status, final.attempts) == (Status.COMPLETED, 1)
        assert components(app).metrics.value("validator_reclaims_total", outcome="reclaimed") == 2
    assert await stream_state(redis) == (0, 0)


async def _active(miner, n: int) -> bool:
    return miner.activity.active >= n
