"""Stopping work on a task its owner cancelled (DELETE /api/v1/tasks/{id} on the gateway).

The gateway's cancel is a final status written by the same script as every transition, so
no later write of the validator can overwrite it (they all expect pending or processing).
What is left here is to stop spending miners' time on it: the processor checks before each
attempt (:func:`cancelled`), and :func:`unless_cancelled` runs the whole task's work while
watching the task's events, cancelling it (miner requests in flight included) as soon as
the status says ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from redis.asyncio import Redis

from shared import keys
from shared.events import EventHub
from shared.redis import REDIS_DOWN_ERRORS
from shared.tasks import Status

#: Seconds between status checks when no event arrives (pub/sub may drop one across a
#: reconnect; the hub wakes every watcher after reconnecting, so this is only a backstop).
RECHECK = 15.0


class TaskCancelled(Exception):
    """Raised by the work itself when it finds its task cancelled (before an attempt)."""


async def cancelled(redis: Redis, task_id: str) -> bool:
    """Whether the task's stored status is ``cancelled``."""
    return await redis.hget(keys.task(task_id), "status") == Status.CANCELLED.value.encode()


async def _cancelled_or_unknown(redis: Redis, task_id: str) -> bool:
    # Redis away: not known to be cancelled. The work's own Redis calls meet the same outage
    # and are handled where they are; the watcher must not abandon the work for it.
    try:
        return await cancelled(redis, task_id)
    except REDIS_DOWN_ERRORS:
        return False


async def unless_cancelled(
    hub: EventHub, redis: Redis, task_id: str, work: Coroutine[Any, Any, None]
) -> bool:
    """Run ``work`` to its end (False), or cancel it once the task is cancelled (True, also
    when ``work`` raised :class:`TaskCancelled`). ``work``'s other errors propagate."""
    job = asyncio.ensure_future(work)
    try:
        async with hub.watch(task_id) as watch:
            while not job.done():
                woken = asyncio.ensure_future(watch.wait(RECHECK))
                await asyncio.wait({job, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if not job.done() and await _cancelled_or_unknown(redis, task_id):
                    job.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await job
                    return True
        try:
            job.result()
        except TaskCancelled:
            return True
        return False
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
