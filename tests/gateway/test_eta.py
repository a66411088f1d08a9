"""estimated_completion_time: queued work ahead times recently measured durations."""

from __future__ import annotations

import pytest

from services.gateway.eta import estimate_seconds, mean_duration
from shared import keys
from shared.tasks import TaskType


@pytest.mark.parametrize(
    ("per_task", "ahead", "concurrency", "expected"),
    [
        (45.0, 0, 10, 45),
        (45.0, 9, 10, 45),
        (45.0, 10, 10, 90),
        (2.5, 4, 2, 8),  # three batches of 2.5 s -> 7.5 -> rounded up
        (0.01, 0, 10, 1),  # never quote 0 seconds
    ],
)
def test_formula(per_task, ahead, concurrency, expected):
    assert estimate_seconds(per_task, ahead, concurrency) == expected


def test_mean_ignores_junk_and_falls_back_to_the_seed_defaults():
    assert mean_duration([b"10", b"20", b"oops", b"-1", b"nan"], TaskType.TTS) == 15
    assert mean_duration([], TaskType.TRANSCRIPTION) == 60
    assert mean_duration([], TaskType.TTS) == 45
    assert mean_duration([b"garbage"], TaskType.SUMMARIZATION) == 30


async def _eta(client, priority: str) -> int:
    resp = await client.post("/api/v1/tts", json={"text": "hi", "priority": priority})
    return (await resp.json())["estimated_completion_time"]


async def test_measured_durations_and_higher_priority_work_count(make_gateway, redis):
    client = await make_gateway(max_concurrent_tasks=2, eta_samples=3)
    # The validator LPUSHes newest first; only the newest ETA_SAMPLES count.
    await redis.lpush(keys.durations("tts"), "100", "4", "6", "8")
    assert await _eta(client, "high") == 6  # nothing ahead: one batch of mean(8, 6, 4)
    await _eta(client, "high")  # 2 ahead now
    assert await _eta(client, "high") == 12
    # Low-priority work queues behind and does not delay a normal task...
    for _ in range(5):
        await _eta(client, "low")
    assert await _eta(client, "normal") == 12  # 3 high ahead -> 2 batches
    # ...but an urgent task is only behind other urgent work.
    assert await _eta(client, "urgent") == 6


async def test_other_task_types_keep_their_own_defaults(client, redis):
    await redis.lpush(keys.durations("tts"), "5")
    resp = await client.post("/api/v1/summarization", json={"text": "hi"})
    assert (await resp.json())["estimated_completion_time"] == 30
