"""Entries of dead replicas are reclaimed; too many deliveries dead-letter; completion is
at most once even when a reclaimed copy races the original."""

from __future__ import annotations

from redis.asyncio import Redis

from services.validator.consumer import StreamQueue
from shared import keys
from shared.store import TaskStore
from shared.tasks import Priority, Status
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def take_and_die(redis: Redis, count: int) -> list[str]:
    """What a replica killed mid-attempt leaves: entries read, tasks processing with an
    attempt counted but never finished, nothing acked."""
    queue = StreamQueue(redis, "dead-replica")
    await queue.ensure_groups()
    store, taken = TaskStore(redis, 3600), []
    for _ in range(count):
        delivery = await queue.take()
        await store.transition(delivery.task_id, Status.PROCESSING, expect=[Status.PENDING])
        await redis.hincrby(keys.task(delivery.task_id), "attempts", 1)
        taken.append(delivery.entry_id)
    return taken


async def pending_count(redis: Redis, priority: Priority = Priority.NORMAL) -> int:
    return (await redis.xpending(keys.stream(priority), keys.CONSUMER_GROUP))["pending"]


async def test_entries_of_a_dead_replica_are_reclaimed_and_completed(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    tasks = [await create_task(redis) for _ in range(2)]
    await take_and_die(redis, 2)
    # The shipped RECLAIM_IDLE and RECLAIM_INTERVAL: taken over about 9 s after the death,
    # and the attempt the dead replica never finished is not held against the task.
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [miner]))
    async with running(settings, validator_wallet) as app:
        for task in tasks:
            final = await wait_final(redis, task.task_id, within=30)
            assert (final.status, final.attempts) == (Status.COMPLETED, 1)
        assert components(app).metrics.value("validator_reclaims_total", outcome="reclaimed") == 2
    assert await redis.xlen(keys.stream(Priority.NORMAL)) == 0
    assert await pending_count(redis) == 0


async def test_an_entry_delivered_too_often_is_dead_lettered_and_its_task_failed(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    task = await create_task(redis, priority=Priority.HIGH)
    [entry] = await take_and_die(redis, 1)
    stream = keys.stream(Priority.HIGH)
    for _ in range(2):  # two earlier reclaims that died too
        await redis.xclaim(stream, keys.CONSUMER_GROUP, "dead-replica", 0, [entry])
    # A short RECLAIM_IDLE (and a heartbeat to match) so the entry idles out within the test.
    settings = validator_settings(
        redis_url,
        write_miners(tmp_path / "m.json", [miner]),
        task_timeout=1,
        reclaim_idle=1.1,
        heartbeat_interval=0.5,
        max_deliveries=3,
    )
    async with running(settings, validator_wallet) as app:
        final = await wait_final(redis, task.task_id)
        metrics = components(app).metrics
        assert metrics.value("validator_reclaims_total", outcome="dead_lettered") == 1
    assert final.status is Status.FAILED
    assert "delivered 4 times" in final.error
    [(_, letter)] = await redis.xrange(keys.DEAD_LETTER_STREAM)
    assert letter[b"task_id"].decode() == task.task_id
    assert letter[b"entry_id"].decode() == entry and letter[b"priority"] == b"high"
    assert await redis.xlen(stream) == 0 and await pending_count(redis, Priority.HIGH) == 0
    assert len(miner.activity.accepted) == 0


async def test_reclaimed_copy_racing_the_original_completes_once(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    slow = await start_miner(0, latency=2.5)
    fast = await start_miner(1)
    task = await create_task(redis)
    # Replica A is alive but stalled (a 30 s HEARTBEAT_INTERVAL: no beat within the test);
    # replica B believes it dead once the entry idles past B's short RECLAIM_IDLE, and works
    # on the task too.
    settings_a = validator_settings(
        redis_url,
        write_miners(tmp_path / "a.json", [slow]),
        task_timeout=4,
        reclaim_idle=60,
        heartbeat_interval=30,
    )
    settings_b = validator_settings(
        redis_url,
        write_miners(tmp_path / "b.json", [fast]),
        task_timeout=1,
        reclaim_idle=1.1,
        heartbeat_interval=0.5,
        reclaim_interval=0.1,
    )
    async with running(settings_a, validator_wallet) as a:
        await eventually(lambda: _active(slow))
        async with running(settings_b, validator_wallet) as b:
            final = await wait_final(redis, task.task_id)
            # Let A's copy finish and try to complete too.
            await eventually(lambda: _finished(a))
    ma, mb = components(a).metrics, components(b).metrics
    assert mb.value("validator_reclaims_total", outcome="reclaimed") == 1
    completed = [
        m.value("validator_tasks_total", task_type="summarization", outcome="completed")
        for m in (ma, mb)
    ]
    lost = [
        m.value("validator_tasks_total", task_type="summarization", outcome="lost_race")
        for m in (ma, mb)
    ]
    assert sum(completed) == 1 and sum(lost) == 1
    assert final.status is Status.COMPLETED and final.result["miner_uid"] == 1
    # One completion: one duration measured, the entry gone.
    assert await redis.llen(keys.durations("summarization")) == 1
    assert await redis.xlen(keys.stream(Priority.NORMAL)) == 0
    assert await pending_count(redis) == 0


async def test_a_live_replica_heartbeats_so_its_long_task_is_not_reclaimed(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    slow = await start_miner(0, latency=2.8)
    task = await create_task(redis)
    miners_file = write_miners(tmp_path / "m.json", [slow])
    # Scaled down from the defaults (2 s heartbeat, 8 s idle) to keep the test short: the
    # worker's attempt lasts 2.8 s and it heartbeats every 0.5 s; the watcher takes over
    # entries idle for 1.9 s, which the attempt would outlast without the heartbeat.
    worker_settings = validator_settings(
        redis_url, miners_file, task_timeout=3, heartbeat_interval=0.5
    )
    watcher_settings = validator_settings(
        redis_url,
        miners_file,
        task_timeout=1,
        reclaim_idle=1.9,
        heartbeat_interval=0.5,
        reclaim_interval=0.1,
    )
    async with running(worker_settings, validator_wallet) as worker:
        await eventually(lambda: _active(slow))
        async with running(watcher_settings, validator_wallet) as watcher:
            final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED and final.attempts == 1
    for app in (watcher, worker):
        assert components(app).metrics.value("validator_reclaims_total", outcome="reclaimed") == 0
    assert len(slow.activity.accepted) == 1


async def _active(miner) -> bool:
    return miner.activity.active > 0


async def _finished(app) -> bool:
    return not components(app).pool.tasks


async def test_consumer_names_of_long_dead_replicas_are_forgotten(
    redis, redis_url, tmp_path, validator_wallet
):
    await StreamQueue(redis, "dead-replica").ensure_groups()
    stream = keys.stream(Priority.NORMAL)
    # "dead-replica" joined the group and holds nothing; "still-holding" holds an entry.
    await redis.xgroup_createconsumer(stream, keys.CONSUMER_GROUP, "dead-replica")
    await create_task(redis)
    await redis.xreadgroup(keys.CONSUMER_GROUP, "still-holding", {stream: ">"}, count=1)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", []))
    async with running(settings, validator_wallet, name="live") as app:
        reclaimer = components(app).reclaimer
        # Idle for 0 ms or more: every name with nothing pending qualifies.
        assert await reclaimer.forget_dead_consumers(idle_ms=0) >= 1
    names = {c["name"] for c in await redis.xinfo_consumers(stream, keys.CONSUMER_GROUP)}
    assert b"dead-replica" not in names and b"still-holding" in names
