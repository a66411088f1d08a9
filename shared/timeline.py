"""Tasks finished per time bucket, with their end-to-end latency: the dashboard's chart.

Validators count every task that reaches a final status (the gateway counts the ones its
owner cancels) in a hash per BUCKET_SECONDS
bucket (keys.ops_timeline): one field per final status, and for completed tasks the
latency's sum and a count per latency bucket (the same bounds for every task type), so
the gateway can draw throughput and latency percentiles for the last WINDOW_SECONDS
whichever replicas did the work. Each hash expires after RETENTION seconds.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared import keys

BUCKET_SECONDS = 15
WINDOW_SECONDS = 15 * 60
RETENTION = 3600
#: Upper bounds (seconds) of the latency buckets; a latency above the last one is "inf".
LATENCY_BOUNDS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_SUM = "latency_sum"


def bucket_of(at: float) -> int:
    """The bucket number holding unix time ``at``."""
    return int(at // BUCKET_SECONDS)


def _latency_field(seconds: float) -> str:
    i = bisect.bisect_left(LATENCY_BOUNDS, seconds)
    return f"le_{LATENCY_BOUNDS[i]:g}" if i < len(LATENCY_BOUNDS) else "le_inf"


def record(pipe: Pipeline, status: str, created_at: float, at: float | None = None) -> float:
    """Queue on ``pipe`` the commands that count one task, submitted at ``created_at``,
    as finished with ``status`` at ``at`` (default: now); returns ``at``. No round trip of
    its own: the caller's pipeline carries it."""
    at = time.time() if at is None else at
    key = keys.ops_timeline(bucket_of(at))
    pipe.hincrby(key, status, 1)
    if status == "completed":
        seconds = max(0.0, at - created_at)
        pipe.hincrbyfloat(key, LATENCY_SUM, round(seconds, 6))
        pipe.hincrby(key, _latency_field(seconds), 1)
    pipe.expire(key, RETENTION)
    return at


async def count(redis: Redis, status: str, created_at: float) -> float:
    """:func:`record` in a pipeline of its own; returns the time counted."""
    async with redis.pipeline(transaction=False) as pipe:
        at = record(pipe, status, created_at)
        await pipe.execute()
    return at


@dataclass(frozen=True)
class Point:
    """One bucket of the chart."""

    at: float  # the bucket's start, unix seconds
    finished: dict[str, int]  # final status -> tasks
    latency_mean: float | None  # completed tasks only
    latency_p50: float | None
    latency_p95: float | None

    def view(self) -> dict[str, object]:
        return {
            "at": self.at,
            "completed": self.finished.get("completed", 0),
            "failed": self.finished.get("failed", 0),
            "cancelled": self.finished.get("cancelled", 0),
            "finished": self.finished,
            "latency_mean": self.latency_mean,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
        }


def quantile(q: float, counts: dict[float, int]) -> float | None:
    """The ``q`` quantile of bucketed latencies (bound -> count), interpolated linearly
    within its bucket as Prometheus' histogram_quantile does; None with no samples."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound in sorted(counts):
        if counts[bound] and seen + counts[bound] >= rank:
            if math.isinf(bound):
                return lower  # as histogram_quantile: the highest finite bound
            return round(lower + (bound - lower) * (rank - seen) / counts[bound], 3)
        seen += counts[bound]
        lower = bound if not math.isinf(bound) else lower
    return lower


def _point(bucket: int, raw: dict[bytes, bytes]) -> Point:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    counts: dict[float, int] = {}
    finished: dict[str, int] = {}
    total_latency = 0.0
    for name, value in fields.items():
        if name.startswith("le_"):
            counts[float(name[3:])] = int(value)
        elif name == LATENCY_SUM:
            total_latency = float(value)
        else:
            finished[name] = int(value)
    completed = sum(counts.values())
    return Point(
        at=float(bucket * BUCKET_SECONDS),
        finished=finished,
        latency_mean=round(total_latency / completed, 3) if completed else None,
        latency_p50=quantile(0.5, counts),
        latency_p95=quantile(0.95, counts),
    )


async def read(redis: Redis, now: float) -> list[Point]:
    """Every bucket of the WINDOW_SECONDS up to ``now``, oldest first (empty ones too)."""
    last = bucket_of(now)
    buckets = range(last - WINDOW_SECONDS // BUCKET_SECONDS + 1, last + 1)
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in buckets:
            pipe.hgetall(keys.ops_timeline(bucket))
        rows = await pipe.execute()
    return [_point(b, raw) for b, raw in zip(buckets, rows, strict=True)]
