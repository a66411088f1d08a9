"""Waiting out a full Redis (maxmemory reached, noeviction): tasks pause, none is failed.

Redis refuses a write that needs memory before making it (a script at its first such
write), so a refusal leaves nothing half-written, and the commands that hold a queue entry
(XCLAIM for the heartbeat, XACK, XDEL) need no memory. A task whose write is refused is
therefore kept exactly as it is: its entry stays pending with this replica, the worker keeps
heartbeating it, and the handling is repeated with a backoff until Redis takes writes again.
The background loops (consumer, netstats, webhooks, weights) skip a round instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from services.validator.consumer import Delivery, Handler
from services.validator.metrics import Metrics
from shared.logging import get_logger
from shared.redis import FULL_RETRY_FIRST, FULL_RETRY_MAX, storage_full

log = get_logger("validator.storagefull")

Abandon = Callable[[Delivery, int], Awaitable[None]]


class WaitWhileFull:
    """A delivery handler that repeats ``handler`` while Redis refuses its writes.

    Repeating is safe, as for a reclaimed copy of the entry: a final task is only
    acknowledged, a processing one resumes at its next attempt (the attempt the refusal cut
    short stays counted). The wait ends by Redis taking writes again or by cancellation
    (shutdown), when the worker hands the entry back as usual.
    """

    def __init__(self, handler: Handler, metrics: Metrics) -> None:
        self.handler = handler
        self.metrics = metrics
        #: Entry ids whose handling waits for Redis to take writes again.
        self.waiting: set[str] = set()

    async def __call__(self, delivery: Delivery) -> None:
        delay = FULL_RETRY_FIRST
        try:
            while True:
                try:
                    await self.handler(delivery)
                    return
                except RedisError as exc:
                    if not storage_full(exc):
                        raise
                    self.metrics.storage_full.labels("task").inc()
                    log.warning(
                        "task_waiting_for_storage",
                        task_id=delivery.task_id,
                        error=str(exc),
                        retry_in=delay,
                    )
                self.waiting.add(delivery.entry_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, FULL_RETRY_MAX)
        finally:
            self.waiting.discard(delivery.entry_id)


def defer_while_full(abandon: Abandon, metrics: Metrics) -> Abandon:
    """``abandon`` (dead-letter and fail), except that while Redis is full the entry is left
    pending: a later reclaim sweep takes it again and retries."""

    async def deferring(delivery: Delivery, deliveries: int) -> None:
        try:
            await abandon(delivery, deliveries)
        except RedisError as exc:
            if not storage_full(exc):
                raise
            metrics.storage_full.labels("reclaim").inc()
            log.warning("dead_letter_deferred", task_id=delivery.task_id, error=str(exc))

    return deferring


def refused(exc: RedisError, loop: str, metrics: Metrics) -> bool:
    """For a background loop's ``except RedisError``: True (counted and logged) when Redis
    refused a write for lack of memory, so the loop skips a round; False for anything else,
    which the caller re-raises."""
    if not storage_full(exc):
        return False
    metrics.storage_full.labels(loop).inc()
    log.warning("storage_full", loop=loop, error=str(exc))
    return True
