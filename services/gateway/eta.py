"""estimated_completion_time: work queued ahead times recently measured durations.

    ahead    = XLEN of every priority stream at or above the task's priority
               (the validator XDELs finished entries, so this counts waiting + in flight)
    per_task = mean of the last ETA_SAMPLES durations the validator measured for this task
               type (keys.durations), else the seed's 60 / 45 / 30 s
    estimate = ceil(per_task * (ahead // MAX_CONCURRENT_TASKS + 1)), at least 1 second

That is: tasks are worked on MAX_CONCURRENT_TASKS at a time, and this one starts once the
batches ahead of it have finished. Lower-priority work never delays it.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from shared import keys
from shared.store import Probe, Snapshot
from shared.tasks import DEFAULT_ESTIMATE, PRIORITY_ORDER, Priority, TaskType


def mean_duration(raw: list[bytes], task_type: TaskType) -> float:
    """Mean of the positive, parseable samples; the seed default when there are none."""
    samples = []
    for item in raw:
        try:
            value = float(item)
        except ValueError:
            continue
        if value > 0 and math.isfinite(value):
            samples.append(value)
    return sum(samples) / len(samples) if samples else float(DEFAULT_ESTIMATE[task_type])


def estimate_seconds(per_task: float, ahead: int, concurrency: int) -> int:
    """Seconds until a task with ``ahead`` entries before it finishes (formula above)."""
    return max(1, math.ceil(per_task * (ahead // max(1, concurrency) + 1)))


def probe(task_type: TaskType, priority: Priority, *, samples: int) -> Probe:
    """What the estimate reads: the streams at or above ``priority`` and recent durations,
    for :meth:`shared.store.TaskStore.create_probed` to read while storing the task."""
    ahead_of = PRIORITY_ORDER[: PRIORITY_ORDER.index(priority) + 1]
    return Probe(ahead_of, task_type, samples)


def from_snapshot(snapshot: Snapshot, task_type: TaskType, *, concurrency: int) -> int:
    """The estimate from what a :func:`probe` read."""
    return estimate_seconds(
        mean_duration(snapshot.durations, task_type), snapshot.ahead, concurrency
    )


async def estimate(
    redis: Redis, task_type: TaskType, priority: Priority, *, samples: int, concurrency: int
) -> int:
    """Read the :func:`probe`'s keys in one round trip, before storing, and apply the formula
    (for submissions whose stored answer must contain the estimate: Idempotency-Key)."""
    wanted = probe(task_type, priority, samples=samples)
    async with redis.pipeline(transaction=False) as pipe:
        for p in wanted.streams:
            pipe.xlen(keys.stream(p))
        pipe.lrange(keys.durations(task_type), 0, samples - 1)
        *lengths, raw = await pipe.execute()
    return from_snapshot(Snapshot(sum(lengths), raw), task_type, concurrency=concurrency)
