"""shared.timeline: tasks finished per bucket and their latency, written and read on real
Redis; quantiles as Prometheus' histogram_quantile computes them."""

from __future__ import annotations

import pytest

from shared import keys, timeline


async def test_finished_tasks_land_in_their_bucket_with_latency(redis):
    now = 1_800_000_000.0
    async with redis.pipeline(transaction=False) as pipe:
        for seconds in (0.4, 0.8, 1.5, 4.0):
            timeline.record(pipe, "completed", now - seconds, at=now)
        timeline.record(pipe, "failed", now - 200, at=now)
        timeline.record(pipe, "completed", now - 63.0, at=now - 60)
        await pipe.execute()
    points = await timeline.read(redis, now)
    assert len(points) == timeline.WINDOW_SECONDS // timeline.BUCKET_SECONDS == 60
    assert points[-1].at <= now < points[-1].at + timeline.BUCKET_SECONDS
    last = points[-1]
    assert last.finished == {"completed": 4, "failed": 1}
    assert last.latency_mean == pytest.approx((0.4 + 0.8 + 1.5 + 4.0) / 4, abs=1e-3)
    assert last.latency_p50 == 1.0  # two of four within 1 s: the 1 s bucket's upper bound
    assert last.latency_p95 == pytest.approx(4.4)  # rank 3.8 of 4: 2 + (5 - 2) x 0.8
    earlier = points[-5]  # 60 s before: four 15 s buckets back
    assert earlier.finished == {"completed": 1} and earlier.latency_mean == 3.0
    assert sum(p.finished.get("completed", 0) for p in points) == 5
    ttl = await redis.ttl(keys.ops_timeline(timeline.bucket_of(now)))
    assert 0 < ttl <= timeline.RETENTION


async def test_empty_buckets_read_as_zero_with_no_latency(redis):
    points = await timeline.read(redis, 1_800_000_000.0)
    assert all(p.finished == {} and p.latency_p50 is None for p in points)
    view = points[0].view()
    assert view["completed"] == 0 and view["failed"] == 0 and view["latency_p95"] is None


def test_quantile_interpolates_within_the_bucket_like_histogram_quantile():
    counts = {1.0: 2, 2.0: 2, float("inf"): 0}
    assert timeline.quantile(0.5, counts) == 1.0
    assert timeline.quantile(0.75, counts) == 1.5
    assert timeline.quantile(0.5, {}) is None
    # Above the highest finite bound: that bound, as histogram_quantile answers.
    assert timeline.quantile(0.99, {1.0: 1, float("inf"): 9}) == 1.0


async def test_count_writes_one_task_in_a_round_trip_of_its_own(redis):
    at = await timeline.count(redis, "failed", created_at=0.0)
    (point,) = [p for p in await timeline.read(redis, at) if p.finished]
    assert point.finished == {"failed": 1} and point.latency_mean is None
