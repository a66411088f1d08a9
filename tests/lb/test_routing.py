"""Routing: least load (polled active_jobs plus the LB's own unfinished requests)."""

from __future__ import annotations

import asyncio

from tests.lb.conftest import eventually


async def test_routes_to_the_instance_with_the_fewest_jobs(make_instance, make_lb):
    busy, idle, middling = [await make_instance(active_jobs=n) for n in (5, 1, 3)]
    client = await make_lb(busy, idle, middling)
    for _ in range(10):
        response = await client.post("/v1/audio/transcriptions", data=b"audio")
        assert response.status == 200
    assert (len(busy.received), len(idle.received), len(middling.received)) == (0, 10, 0)


async def test_ties_are_broken_at_random(make_instance, make_lb):
    a, b = await make_instance(), await make_instance()
    client = await make_lb(a, b)
    for _ in range(40):
        assert (await client.post("/v1/audio/transcriptions", data=b"x")).status == 200
    # A fixed order would send all 40 to one instance (chance of that at random: 2^-39).
    assert len(a.received) > 0 and len(b.received) > 0


async def _held_burst(client, instances, count):
    """Send ``count`` concurrent requests that the instances hold until released."""
    for instance in instances:
        instance.release.clear()
    tasks = [
        asyncio.create_task(client.post("/v1/audio/transcriptions", data=b"job"))
        for _ in range(count)
    ]
    await eventually(lambda: sum(len(i.received) for i in instances) == count)
    return tasks


async def _release(instances, tasks):
    for instance in instances:
        instance.release.set()
    for response in await asyncio.gather(*tasks):
        assert response.status == 200


async def test_a_burst_spreads_evenly_over_idle_instances(make_instance, make_lb):
    instances = [await make_instance(active_jobs=0) for _ in range(3)]
    client = await make_lb(*instances)
    tasks = await _held_burst(client, instances, 30)
    counts = [len(i.received) for i in instances]
    await _release(instances, tasks)
    assert all(9 <= c <= 11 for c in counts), counts


async def test_outside_jobs_from_the_poll_count_with_the_lbs_own(make_instance, make_lb):
    loaded = await make_instance(active_jobs=4)
    idle = [await make_instance(active_jobs=0) for _ in range(2)]
    client = await make_lb(loaded, *idle)
    tasks = await _held_burst(client, [loaded, *idle], 8)
    counts = [len(i.received) for i in (loaded, *idle)]
    await _release([loaded, *idle], tasks)
    # The idle pair fill up to the 4 jobs the loaded one reported before it gets any.
    assert counts == [0, 4, 4]


def _in_flight(metrics: str) -> list[float]:
    prefix = "lb_in_flight_requests{"
    return [float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(prefix)]


async def test_finished_requests_stop_counting(make_instance, make_lb):
    a, b = await make_instance(), await make_instance()
    client = await make_lb(a, b)
    tasks = await _held_burst(client, [a, b], 6)
    assert _in_flight(await (await client.get("/metrics")).text()) == [3.0, 3.0]
    await _release([a, b], tasks)
    assert _in_flight(await (await client.get("/metrics")).text()) == [0.0, 0.0]
