"""Taking over the entries of replicas that died: XAUTOCLAIM past RECLAIM_IDLE.

A live replica heartbeats its entries, so an entry idle for RECLAIM_IDLE belongs to a dead
(or cut-off) replica. Claiming is two steps because Redis 6.2's XAUTOCLAIM returns deleted
entries without their ids: XAUTOCLAIM JUSTID takes the ids (resetting their idle time, so
no other replica races us), then XCLAIM per id fetches the entry and counts the delivery.
An entry delivered more than MAX_DELIVERIES times is dead-lettered and its task failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from services.validator.consumer import Delivery, StreamQueue, WorkPool
from services.validator.metrics import Metrics
from shared import keys
from shared.logging import get_logger
from shared.periodic import every
from shared.redis import REDIS_DOWN_ERRORS, wait_for_redis
from shared.tasks import PRIORITY_ORDER, Priority

log = get_logger("validator.reclaim")

Abandon = Callable[[Delivery, int], Awaitable[None]]


class Reclaimer:
    """Periodically claims idle entries into this replica's free slots."""

    def __init__(
        self,
        queue: StreamQueue,
        pool: WorkPool,
        abandon: Abandon,
        metrics: Metrics,
        *,
        idle: float,
        interval: float,
        max_deliveries: int,
    ) -> None:
        self.queue = queue
        self.pool = pool
        self.abandon = abandon
        self.metrics = metrics
        self.idle_ms = int(idle * 1000)
        self.interval = interval
        self.max_deliveries = max_deliveries

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every RECLAIM_INTERVAL until ``stop``."""
        async for _ in every(self.interval, stop):
            try:
                await self.sweep()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("reclaim_redis_unavailable", error=str(exc))
                await wait_for_redis(self.redis, stop=stop)

    async def sweep(self) -> int:
        """Claim idle entries, highest priority first, while slots are free; returns count."""
        taken = 0
        for priority in PRIORITY_ORDER:
            while True:
                # Reserve the slots first: a claimed entry must never wait for room.
                reserved = 0
                while self.pool.try_acquire():
                    reserved += 1
                if not reserved:
                    return taken
                try:
                    ids = await self._claim_ids(priority, reserved)
                    for entry_id in ids:
                        reserved -= 1  # the slot now belongs to this entry's worker
                        await self._take(priority, entry_id)
                        taken += 1
                finally:
                    for _ in range(reserved):
                        self.pool.release_slot()
                if not ids or reserved:
                    break
        return taken

    async def _claim_ids(self, priority: Priority, count: int) -> list[str]:
        ids = await self.redis.xautoclaim(
            keys.stream(priority),
            keys.CONSUMER_GROUP,
            self.queue.consumer,
            self.idle_ms,
            start_id="0-0",
            count=count,
            justid=True,
        )
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def _take(self, priority: Priority, entry_id: str) -> None:
        """Work on one claimed entry in a slot already acquired for it (freed unless used)."""
        started = False
        try:
            started = await self._start(priority, entry_id)
        finally:
            if not started:
                self.pool.release_slot()

    async def _start(self, priority: Priority, entry_id: str) -> bool:
        stream = keys.stream(priority)
        claimed = await self.redis.xclaim(
            stream, keys.CONSUMER_GROUP, self.queue.consumer, 0, [entry_id]
        )
        fields = claimed[0][1] if claimed and claimed[0][0] is not None else None
        if fields is None:
            # Deleted while pending (Redis 6.2 keeps such ids): nothing left to do.
            await self.redis.xack(stream, keys.CONSUMER_GROUP, entry_id)
            return False
        task_id = fields.get(b"task_id", b"").decode()
        delivery = Delivery(priority, entry_id, task_id, reclaimed=True)
        pending = await self.redis.xpending_range(
            stream, keys.CONSUMER_GROUP, entry_id, entry_id, 1
        )
        deliveries = int(pending[0]["times_delivered"]) if pending else 1
        if deliveries > self.max_deliveries:
            await self.abandon(delivery, deliveries)
            return False
        self.metrics.reclaims.labels("reclaimed").inc()
        log.info("entry_reclaimed", task_id=task_id, entry=entry_id, deliveries=deliveries)
        self.pool.start(delivery)
        return True
