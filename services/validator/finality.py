"""A task's end that survives Redis going away: outages and Sentinel failovers.

A replica holds its entries through an outage: work interrupted by Redis errors waits for
Redis and starts again from the task's stored state (a task already final is only
re-notified), instead of waiting RECLAIM_IDLE for another replica to reclaim it.

With REDIS_MIN_REPLICAS_ACK > 0 a completion or failure counts once that many replicas
confirm it (Redis WAIT): until then the replica keeps the task and its answer, waiting
(after a failover the new master first needs a replica of its own) and writing it again
if the failover lost it. The queue entry is acknowledged only once the replicas hold the
final status and, for a task with a callback_url, its queued webhook. Losing the
acknowledgement itself is harmless: the entry is reclaimed, found final, acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.validator.webhooks import delivery_id
from shared import keys
from shared.logging import get_logger
from shared.redis import REDIS_DOWN_ERRORS, wait_for_redis
from shared.replication import NotReplicated
from shared.store import TaskStore
from shared.tasks import FINAL_STATUSES, Status

log = get_logger("validator.finality")

#: The hash field that tells one final write from another (the same value = the same write).
_SIGNATURE = {Status.COMPLETED: "result", Status.FAILED: "error"}
#: Every final status, each with its webhook (a cancellation's is queued by the gateway).
_FINALS = tuple(sorted(FINAL_STATUSES))


class Finality:
    """Final writes and acknowledgements of one validator replica."""

    def __init__(self, redis: Redis, store: TaskStore) -> None:
        self.redis = redis
        self.store = store
        self.replication = store.replication

    async def hold(
        self,
        task_id: str,
        work: Callable[[], Awaitable[None]],
        acknowledge: Callable[[], Awaitable[None]],
    ) -> None:
        """``work``, then ``acknowledge`` once its outcome is settled; Redis errors on the way
        wait for Redis and start ``work`` again (it must be idempotent, as handling a
        reclaimed entry is)."""
        while True:
            try:
                await work()
                if await self.settled(task_id):
                    await acknowledge()
                    return
                log.warning("task_outcome_lost", task_id=task_id)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("task_paused", task_id=task_id, error=str(exc))
                await wait_for_redis(self.redis)

    async def finalize(
        self,
        task_id: str,
        to: Status,
        *,
        expect: Iterable[Status],
        fields: dict[str, Any],
        output: bytes | None = None,
        binary_output: bool = False,
    ) -> bool:
        """Move the task to the final status ``to``; True once this call's write counts
        (on the replicas too, with REDIS_MIN_REPLICAS_ACK), False if it was already final.

        After an unconfirmed or interrupted write the stored state decides: our write
        (same result or error) is done, another final status wins, anything else means
        the write was lost with a master and is made again.
        """
        field = _SIGNATURE[to]
        mine = str(fields[field])
        expect = list(expect)
        while True:
            try:
                return await self.store.transition(
                    task_id,
                    to,
                    expect=expect,
                    fields=fields,
                    output=output,
                    binary_output=binary_output,
                )
            except NotReplicated as exc:
                if int(exc.reply) != 1:
                    return False  # nothing was written by us
                log.warning("final_write_unconfirmed", task_id=task_id, acked=exc.acked)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("final_write_interrupted", task_id=task_id, error=str(exc))
                await wait_for_redis(self.redis)
            status, value = await self._state(task_id, field)
            if status == to.value and value == mine:
                log.info("final_write_confirmed", task_id=task_id, status=to.value)
                return True
            if status is None or Status(status) in FINAL_STATUSES:
                return False
            log.warning("final_write_lost", task_id=task_id, status=status)

    async def settled(self, task_id: str) -> bool:
        """Whether ``task_id``'s entry may be acknowledged. With replicas to wait for: once
        they hold its final status and (callback_url set) its webhook; False when a
        failover lost either, and the entry must be handled again."""
        if not self.replication.enabled:
            return True

        def read(pipe: Pipeline) -> None:
            pipe.hmget(keys.task(task_id), "status", "callback_url")
            for final in _FINALS:
                pipe.exists(keys.webhook(delivery_id(task_id, final)))

        (status, callback), *queued = await self._confirmed(read)
        if status is None:
            return True  # no such task: nothing to keep
        current = Status(status.decode())
        if current not in FINAL_STATUSES:
            return False
        return not callback or bool(dict(zip(_FINALS, queued, strict=True))[current])

    async def _state(self, task_id: str, field: str) -> tuple[str | None, str | None]:
        """The task's status and ``field``, as the master's replicas hold them too."""

        def read(pipe: Pipeline) -> None:
            pipe.hmget(keys.task(task_id), "status", field)

        while True:
            try:
                if self.replication.enabled:
                    (values,) = await self._confirmed(read)
                else:
                    values = await self.redis.hmget(keys.task(task_id), "status", field)
                status, value = values
                return (status.decode() if status else None, value.decode() if value else None)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("final_state_unreadable", task_id=task_id, error=str(exc))
                await wait_for_redis(self.redis)

    async def _confirmed(self, read: Callable[[Pipeline], None]) -> list[Any]:
        """``read`` through :meth:`Replication.fence`, asked again until the replicas confirm
        (each try already waited REDIS_ACK_TIMEOUT_MS)."""
        while True:
            try:
                return await self.replication.fence(self.redis, read)
            except NotReplicated:
                continue
