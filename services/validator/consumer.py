"""Taking work from the priority streams: strict priority, a cap on tasks in flight, and a
bounded, loss-free shutdown.

Entries are read one stream at a time, highest priority first (XREADGROUP applies COUNT per
stream, so one read over all streams could hand out low-priority work while urgent work
waits). Only when every stream is empty does the consumer block, and then with a plain
XREAD from each stream's last id, which wakes on a new entry without taking it. A worker
heartbeats its entry so that a live replica's work never looks idle to reclaimers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.validator.metrics import Metrics
from shared import keys
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import FULL_RETRY_MAX, REDIS_DOWN_ERRORS, storage_full, wait_for_redis
from shared.tasks import PRIORITY_ORDER, Priority

log = get_logger("validator.consumer")

# Both scripts act only while ``consumer`` still owns the entry: once another replica has
# reclaimed it, the entry is theirs to heartbeat or finish.
# KEYS: stream. ARGV: group, consumer, entry id.
_TOUCH = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""
# KEYS: stream. ARGV: group, entry id. A script, not MULTI: a full Redis (maxmemory) refuses
# every command queued in a MULTI, but these two need no memory and free some.
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
# KEYS: stream. ARGV: group, consumer, entry id, idle ms. Hands the entry back where it is:
# it looks long idle, so any replica's next reclaim sweep takes it (a requeue at the tail
# would put it behind the whole backlog). The delivery count goes down by one, so a hand-back
# is not counted towards MAX_DELIVERIES when the entry is claimed again.
_RELEASE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
local count = math.max(p[1][4] - 1, 0)
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4],
  'RETRYCOUNT', count, 'JUSTID')
return 1
"""
#: The idle time a handed-back entry gets: past any RECLAIM_IDLE (about 11.6 days).
HANDED_BACK_IDLE_MS = 10**9


@dataclass(frozen=True)
class Delivery:
    """One stream entry this replica holds: which task, from where."""

    priority: Priority
    entry_id: str
    task_id: str
    reclaimed: bool = False

    @property
    def stream(self) -> str:
        return keys.stream(self.priority)


class StreamQueue:
    """The consumer-group operations on the priority streams, for one consumer name."""

    def __init__(self, redis: Redis, consumer: str) -> None:
        self.redis = redis
        self.consumer = consumer
        self._touch = redis.register_script(_TOUCH)
        self._release = redis.register_script(_RELEASE)
        self._finish = redis.register_script(_FINISH)

    async def ensure_groups(self) -> None:
        """Create the group on every stream (from the start, so no earlier entry is missed).
        Existing groups are only read: XGROUP CREATE is refused by a full Redis (maxmemory)
        even when the group exists, and a replica starting then can still work."""
        for priority in PRIORITY_ORDER:
            if await self._has_group(keys.stream(priority)):
                continue
            try:
                await self.redis.xgroup_create(
                    keys.stream(priority), keys.CONSUMER_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _has_group(self, stream: str) -> bool:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            return False
        return any(g["name"].decode() == keys.CONSUMER_GROUP for g in groups)

    async def take(self) -> Delivery | None:
        """The oldest new entry of the highest non-empty priority, or None if all are empty."""
        for priority in PRIORITY_ORDER:
            reply = await self.redis.xreadgroup(
                keys.CONSUMER_GROUP, self.consumer, {keys.stream(priority): ">"}, count=1
            )
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    return Delivery(priority, entry_id.decode(), _task_id(fields))
        return None

    async def last_ids(self) -> dict[str, str]:
        """Each stream's last generated id: where a wake-up read starts from."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for priority in PRIORITY_ORDER:
                pipe.xinfo_stream(keys.stream(priority))
            infos = await pipe.execute()
        return {
            keys.stream(p): info["last-generated-id"].decode()
            for p, info in zip(PRIORITY_ORDER, infos, strict=True)
        }

    async def wait_for_entries(
        self, since: dict[str, str], block: float, stop: asyncio.Event
    ) -> None:
        """Block until any stream gets an entry after ``since``, ``block`` seconds pass or
        ``stop`` is set (the read takes nothing, so abandoning it loses nothing)."""
        read = asyncio.ensure_future(
            self.redis.xread(since, count=1, block=max(1, int(block * 1000)))
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([read, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not read.done():
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)
            return
        read.result()

    async def next(self, stop: asyncio.Event, block: float) -> Delivery | None:
        """The next entry by strict priority, blocking while all streams are empty."""
        while not stop.is_set():
            since = await self.last_ids()
            delivery = await self.take()
            if delivery is not None:
                return delivery
            await self.wait_for_entries(since, block, stop)
        return None

    async def finish(self, delivery: Delivery) -> None:
        """Acknowledge and delete: the gateway counts XLEN as waiting + in flight."""
        await self._finish(keys=[delivery.stream], args=[keys.CONSUMER_GROUP, delivery.entry_id])

    async def touch(self, delivery: Delivery) -> bool:
        """Reset the entry's idle time; False once another replica has reclaimed it."""
        args = [keys.CONSUMER_GROUP, self.consumer, delivery.entry_id]
        return bool(await self._touch(keys=[delivery.stream], args=args))

    async def release(self, delivery: Delivery) -> bool:
        """Hand an unfinished entry back for another replica to claim at once, if still ours."""
        args = [keys.CONSUMER_GROUP, self.consumer, delivery.entry_id, HANDED_BACK_IDLE_MS]
        return bool(await self._release(keys=[delivery.stream], args=args))


def _task_id(fields: dict[bytes, bytes] | None) -> str:
    return (fields or {}).get(b"task_id", b"").decode()


Handler = Callable[[Delivery], Awaitable[None]]


class WorkPool:
    """At most ``size`` tasks in flight; slots are taken before entries are, so this replica
    never holds an entry it has no room to work on."""

    def __init__(
        self, size: int, queue: StreamQueue, handler: Handler, metrics: Metrics, heartbeat: float
    ) -> None:
        self.size = size
        self.queue = queue
        self.handler = handler
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.used = 0
        self.tasks: dict[asyncio.Task[None], Delivery] = {}
        self._freed = asyncio.Event()
        # Reclaimed entries wait for slots ahead of new ones: under a steady backlog the
        # consumer would otherwise take every freed slot and a dead replica's tasks would
        # wait until the backlog drained.
        self._urgent = 0

    @property
    def free(self) -> int:
        return self.size - self.used

    def try_acquire(self, *, urgent: bool = False) -> bool:
        held_back = 0 if urgent else self._urgent
        if self.used + held_back >= self.size:
            return False
        self.used += 1
        return True

    async def acquire(self, stop: asyncio.Event, *, urgent: bool = False) -> bool:
        """Wait for a free slot (``urgent`` waiters first); False if ``stop`` was set first."""
        if urgent:
            self._urgent += 1
        try:
            while not stop.is_set():
                if self.try_acquire(urgent=urgent):
                    return True
                self._freed.clear()
                waiters = [
                    asyncio.ensure_future(self._freed.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
            return False
        finally:
            if urgent:
                self._urgent -= 1
                self._freed.set()  # slots held back for this waiter are open to others again

    def release_slot(self) -> None:
        self.used -= 1
        self._freed.set()

    def start(self, delivery: Delivery) -> None:
        """Work on ``delivery`` in a slot already acquired."""
        task = asyncio.create_task(self._work(delivery), name=f"task-{delivery.task_id}")
        self.tasks[task] = delivery
        self.metrics.in_flight.set(len(self.tasks))

    async def _work(self, delivery: Delivery) -> None:
        beat = asyncio.create_task(self._beat(delivery))
        try:
            await self.handler(delivery)
        except asyncio.CancelledError:
            try:
                released = await self.queue.release(delivery)
            except REDIS_DOWN_ERRORS:
                released = False  # left pending: reclaimed once idle
            log.warning("task_handed_back", task_id=delivery.task_id, handed_back=released)
            raise
        except REDIS_DOWN_ERRORS as exc:
            # The entry stays pending; it is reclaimed once Redis is back and it idles out.
            log.warning("task_interrupted", task_id=delivery.task_id, error=str(exc))
        except Exception:
            # A bug must not take the replica down: the entry stays pending, is reclaimed,
            # and past MAX_DELIVERIES it is dead-lettered and its task failed.
            log.exception("task_crashed", task_id=delivery.task_id)
        finally:
            beat.cancel()
            current = asyncio.current_task()
            if current is not None:
                self.tasks.pop(current, None)
            self.metrics.in_flight.set(len(self.tasks))
            self.release_slot()

    async def _beat(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                if not await self.queue.touch(delivery):
                    log.warning("entry_reclaimed_elsewhere", task_id=delivery.task_id)
                    return
            except REDIS_DOWN_ERRORS as exc:
                log.warning("heartbeat_failed", task_id=delivery.task_id, error=str(exc))

    async def drain(self, grace: float) -> None:
        """Let tasks in flight finish for ``grace`` seconds, then hand the rest back."""
        if self.tasks:
            log.info("draining", in_flight=len(self.tasks), grace=grace)
            _, pending = await asyncio.wait(list(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Consumer:
    """The main loop: a slot, then the next entry by priority, then a worker for it."""

    def __init__(self, queue: StreamQueue, pool: WorkPool, block: float) -> None:
        self.queue = queue
        self.pool = pool
        self.block = block

    async def _ensure_groups(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.queue.ensure_groups()
                return
            except REDIS_DOWN_ERRORS as exc:
                log.warning("consumer_redis_unavailable", error=str(exc))
                await wait_for_redis(self.queue.redis, stop=stop)
            except RedisError as exc:
                # A missing group cannot be created while Redis is full: wait for room.
                if not storage_full(exc):
                    raise
                self.pool.metrics.storage_full.labels("consumer").inc()
                log.warning("consumer_storage_full", error=str(exc))
                await pause(stop, FULL_RETRY_MAX)

    async def run(self, stop: asyncio.Event) -> None:
        await self._ensure_groups(stop)
        log.info("consuming", consumer=self.queue.consumer, slots=self.pool.size)
        while not stop.is_set():
            if not await self.pool.acquire(stop):
                break
            try:
                delivery = await self.queue.next(stop, self.block)
            except REDIS_DOWN_ERRORS as exc:
                self.pool.release_slot()
                log.warning("consumer_redis_unavailable", error=str(exc))
                await wait_for_redis(self.queue.redis, stop=stop)
                continue
            except ResponseError as exc:
                # NOGROUP / no such key: the streams were deleted under us; recreate them.
                self.pool.release_slot()
                log.warning("consumer_group_missing", error=str(exc))
                await self._ensure_groups(stop)
                continue
            if delivery is None:
                self.pool.release_slot()
                continue
            self.pool.start(delivery)
