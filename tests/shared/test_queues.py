"""shared.queues: depth, waiting, in-flight and oldest ages per priority, from real Redis."""

from __future__ import annotations

import pytest

from shared import keys
from shared.queues import QueueReader
from shared.tasks import Priority


async def _redis_ms(redis) -> int:
    seconds, micros = await redis.time()
    return seconds * 1000 + micros // 1000


async def test_no_streams_at_all_reads_as_empty_queues(redis):
    figures = await QueueReader(redis).read()
    assert [f.priority for f in figures] == list(Priority)
    for f in figures:
        assert (f.depth, f.waiting, f.in_flight) == (0, 0, 0)
        assert f.oldest_waiting is None and f.oldest_in_flight is None


async def test_without_a_consumer_group_every_entry_waits(redis):
    now = await _redis_ms(redis)
    await redis.xadd(keys.stream("low"), {"task_id": "a"}, id=f"{now - 90_000}-0")
    await redis.xadd(keys.stream("low"), {"task_id": "b"}, id=f"{now - 10_000}-0")
    low = {f.priority: f for f in await QueueReader(redis).read()}[Priority.LOW]
    assert (low.depth, low.waiting, low.in_flight) == (2, 2, 0)
    assert low.oldest_waiting == pytest.approx(90, abs=2)  # measured on Redis' clock
    assert low.oldest_in_flight is None


async def test_entries_a_validator_took_are_in_flight_and_the_rest_wait(redis):
    stream = keys.stream("high")
    now = await _redis_ms(redis)
    for age in (120, 60, 30):  # seconds ago
        await redis.xadd(stream, {"task_id": str(age)}, id=f"{now - age * 1000}-0")
    await redis.xgroup_create(stream, keys.CONSUMER_GROUP, id="0")
    await redis.xreadgroup(keys.CONSUMER_GROUP, "v1", {stream: ">"}, count=1)
    high = {f.priority: f for f in await QueueReader(redis).read()}[Priority.HIGH]
    assert (high.depth, high.waiting, high.in_flight) == (3, 2, 1)
    assert high.oldest_in_flight == pytest.approx(120, abs=2)
    assert high.oldest_waiting == pytest.approx(60, abs=2)
    view = high.view()
    assert view["priority"] == "high" and view["waiting"] == 2 and view["in_flight"] == 1


async def test_finished_entries_leave_the_figures(redis):
    stream = keys.stream("urgent")
    entry = await redis.xadd(stream, {"task_id": "x"})
    await redis.xgroup_create(stream, keys.CONSUMER_GROUP, id="0")
    await redis.xreadgroup(keys.CONSUMER_GROUP, "v1", {stream: ">"}, count=1)
    await redis.xack(stream, keys.CONSUMER_GROUP, entry)
    await redis.xdel(stream, entry)  # what the validator does when a task is finished
    urgent = (await QueueReader(redis).read())[0]
    assert (urgent.depth, urgent.waiting, urgent.in_flight) == (0, 0, 0)
    assert urgent.oldest_waiting is None and urgent.oldest_in_flight is None
