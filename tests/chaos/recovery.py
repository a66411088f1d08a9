"""Recovery time after a kill: which tasks the killed replica held, and how long after the
kill each of them reached a final status.

A validator's consumer name starts with ``<hostname>-<pid>-`` (services.validator.app), so
the entries a process holds are its consumers' pending entries in the consumer group.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import statistics
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from devnet.stack import Stack
from shared import keys
from shared.tasks import PRIORITY_ORDER


@dataclass
class Kill:
    """One SIGKILL: when, of which process, and the tasks it held at that moment."""

    at: float
    pid: int
    held: list[str] = field(default_factory=list)


async def held_tasks(redis: Redis, pid: int) -> list[str]:
    """Task ids of the stream entries pending for consumers of process ``pid``."""
    prefix = f"{socket.gethostname()}-{pid}-"
    held: list[str] = []
    for priority in PRIORITY_ORDER:
        stream = keys.stream(priority)
        if not await redis.exists(stream):
            continue
        for consumer in await redis.xinfo_consumers(stream, keys.CONSUMER_GROUP):
            name = consumer["name"]
            name = name.decode() if isinstance(name, bytes) else name
            if not name.startswith(prefix) or not consumer["pending"]:
                continue
            pending = await redis.xpending_range(
                stream, keys.CONSUMER_GROUP, "-", "+", 1000, consumername=name
            )
            for entry in pending:
                for _, fields in await redis.xrange(stream, entry["message_id"], count=1):
                    held.append(fields[b"task_id"].decode())
    return held


async def kill_holding(redis: Redis, stack: Stack, name: str) -> Kill:
    """Note what service ``name`` holds, then SIGKILL it; the kill's time and what it held."""
    process = stack.services[name].process
    assert process is not None
    held = await held_tasks(redis, process.pid)
    await asyncio.to_thread(stack.kill, name, signal.SIGKILL)
    return Kill(time.time(), process.pid, held)


async def final_times(redis: Redis, task_ids: list[str]) -> dict[str, float]:
    """When each final task reached its final status (its hash's updated_at)."""
    async with redis.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hmget(keys.task(task_id), "status", "updated_at")
        rows = await pipe.execute()
    return {
        task_id: float(updated)
        for task_id, (status, updated) in zip(task_ids, rows, strict=True)
        if status in (b"completed", b"failed") and updated
    }


def recovery_figures(kills: list[Kill], finals: dict[str, float]) -> dict[str, object]:
    """Seconds from each kill to the end of each task the killed replica held.

    A task still unfinished is left out here (the test reports it as lost). A held task
    that ended before the kill landed (it finished in the moment between the look and the
    kill) took no recovery and is left out too.
    """
    per_kill = [
        [finals[t] - k.at for t in k.held if t in finals and finals[t] >= k.at] for k in kills
    ]
    delays = [d for kill in per_kill for d in kill]
    return {
        "held_at_kills": sum(len(k.held) for k in kills),
        "recovery_median_s": round(statistics.median(delays), 2) if delays else None,
        "recovery_max_s": round(max(delays), 2) if delays else None,
        "recovery_max_per_kill_s": [round(max(kill), 2) for kill in per_kill if kill],
    }
