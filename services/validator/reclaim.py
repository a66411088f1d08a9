"""Taking over the entries of replicas that died, and of those that handed theirs back.

A live replica heartbeats its entries every HEARTBEAT_INTERVAL, so an entry that has gone
RECLAIM_IDLE without one belongs to a dead (or cut-off) replica; one stopped with SIGTERM
hands its entries back by making them look long idle. Every RECLAIM_INTERVAL a sweep lists
such entries (XPENDING IDLE, highest priority first), waits for a slot for each ahead of new
work, and claims it with XCLAIM and the same minimum idle time: the claim resets the idle
time, so of several replicas sweeping at once exactly one gets each entry. A dead replica's
work is therefore resumed within about RECLAIM_IDLE + RECLAIM_INTERVAL, whatever
TASK_TIMEOUT is. An attempt the dead replica did not finish does not count against the
task (only MAX_DELIVERIES bounds a task that keeps killing replicas): an entry delivered more
than MAX_DELIVERIES times is dead-lettered and its task failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.validator.consumer import Delivery, StreamQueue, WorkPool
from services.validator.metrics import Metrics
from shared import keys
from shared.logging import get_logger
from shared.periodic import every
from shared.redis import REDIS_DOWN_ERRORS, storage_full, wait_for_redis
from shared.tasks import PRIORITY_ORDER, Priority

log = get_logger("validator.reclaim")

#: Every restart of a replica joins the group under a new consumer name. Names with nothing
#: pending that have not read for this long are removed (a live consumer reads at least
#: every BLOCK_TIMEOUT, and one removed by mistake is recreated by its next read).
FORGET_CONSUMERS_AFTER_MS = 3_600_000
#: Seconds between two such clean-ups by one replica.
FORGET_CONSUMERS_EVERY = 300.0

# KEYS: task hash, its attempt records. The task's attempt count becomes the number of
# attempts that finished (each appends a record), forgetting one cut short by a death or a
# hand-back. Nothing is written for a task that no longer exists.
_FORGET_UNFINISHED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local finished = redis.call('LLEN', KEYS[2])
redis.call('HSET', KEYS[1], 'attempts', finished)
return finished
"""

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
        self._forget_unfinished = queue.redis.register_script(_FORGET_UNFINISHED)

    @property
    def redis(self) -> Redis:
        return self.queue.redis

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every RECLAIM_INTERVAL until ``stop``; now and then forget dead consumers."""
        loop = asyncio.get_running_loop()
        next_cleanup = loop.time()
        async for _ in every(self.interval, stop):
            try:
                await self.sweep(stop)
                if loop.time() >= next_cleanup:
                    await self.forget_dead_consumers()
                    next_cleanup = loop.time() + FORGET_CONSUMERS_EVERY
            except REDIS_DOWN_ERRORS as exc:
                log.warning("reclaim_redis_unavailable", error=str(exc))
                await wait_for_redis(self.redis, stop=stop)

    async def sweep(self, stop: asyncio.Event | None = None) -> int:
        """Claim idle entries, highest priority first, each into a slot; returns the count."""
        stop = stop or asyncio.Event()
        taken = 0
        for priority in PRIORITY_ORDER:
            for entry_id in await self._idle_ids(priority):
                if not await self.pool.acquire(stop, urgent=True):
                    return taken
                if await self._take(priority, entry_id):
                    taken += 1
        return taken

    async def forget_dead_consumers(self, idle_ms: int = FORGET_CONSUMERS_AFTER_MS) -> int:
        """Remove consumer names with nothing pending that stopped reading long ago."""
        removed = 0
        for priority in PRIORITY_ORDER:
            stream = keys.stream(priority)
            try:
                consumers = await self.redis.xinfo_consumers(stream, keys.CONSUMER_GROUP)
            except ResponseError:
                continue  # no such stream or group (yet): nothing to forget
            for consumer in consumers:
                if consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
                    name = _text(consumer["name"])
                    await self.redis.xgroup_delconsumer(stream, keys.CONSUMER_GROUP, name)
                    removed += 1
        if removed:
            log.info("consumers_forgotten", count=removed)
        return removed

    async def _idle_ids(self, priority: Priority) -> list[str]:
        pending = await self.redis.xpending_range(
            keys.stream(priority),
            keys.CONSUMER_GROUP,
            "-",
            "+",
            self.pool.size,
            idle=self.idle_ms,
        )
        return [_text(p["message_id"]) for p in pending]

    async def _take(self, priority: Priority, entry_id: str) -> bool:
        """Claim and work on one entry in a slot already acquired for it (freed unless used)."""
        started = False
        try:
            started = await self._start(priority, entry_id)
        finally:
            if not started:
                self.pool.release_slot()
        return started

    async def _start(self, priority: Priority, entry_id: str) -> bool:
        stream = keys.stream(priority)
        claimed = await self.redis.xclaim(
            stream, keys.CONSUMER_GROUP, self.queue.consumer, self.idle_ms, [entry_id]
        )
        if not claimed:
            return False  # another replica claimed it first, or its owner heartbeat again
        fields = claimed[0][1] if claimed[0][0] is not None else None
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
        if task_id:
            try:
                await self._forget_unfinished(
                    keys=[keys.task(task_id), keys.task_attempts(task_id)]
                )
            except RedisError as exc:
                # A full Redis (maxmemory) refuses the count's reset: the takeover goes on,
                # with the unfinished attempt counted.
                if not storage_full(exc):
                    raise
        self.metrics.reclaims.labels("reclaimed").inc()
        log.info("entry_reclaimed", task_id=task_id, entry=entry_id, deliveries=deliveries)
        self.pool.start(delivery)
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
