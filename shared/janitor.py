"""Deleting blobs: those due (inputs past INPUT_RETENTION, outputs past RESULT_TTL) and
orphans (blobs no task refers to, left by a crash between a blob write and a Redis write).

Due deletions come from the zset keys.BLOB_EXPIRY, filled by the final-status transition
in the same script that changes the status, so none is ever missed. The orphan sweep lists
the store and removes blobs older than BLOB_ORPHAN_AGE whose task record is gone (or, for
an output or segments, whose task names another): the age spares uploads still in progress
and blobs whose task is being created. One replica sweeps at a time (keys.BLOB_SWEEP_LOCK).
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.blobs import INCOMING, BlobInfo, BlobStore, BlobUnavailable
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import REDIS_DOWN_ERRORS, storage_full, wait_for_redis

log = get_logger("janitor")

#: Due deletions handled per Redis read; orphan candidates checked per Redis round trip.
BATCH = 200


class BlobJanitor:
    """The periodic blob deletions; :meth:`run` is one of the validator's loops."""

    def __init__(
        self, redis: Redis, blobs: BlobStore, *, interval: float, orphan_age: float, owner: str
    ) -> None:
        self.redis = redis
        self.blobs = blobs
        self.interval = interval
        self.orphan_age = orphan_age
        self.owner = owner
        self._next_sweep = 0.0

    async def delete_due(self, at: float | None = None) -> int:
        """Delete every blob whose scheduled time has come; returns how many."""
        at = time.time() if at is None else at
        deleted = 0
        while True:
            names = await self.redis.zrangebyscore(keys.BLOB_EXPIRY, "-inf", at, start=0, num=BATCH)
            for raw in names:
                name = raw.decode()
                await self.blobs.delete(name)
                await self.redis.zrem(keys.BLOB_EXPIRY, name)
                deleted += 1
            if len(names) < BATCH:
                return deleted

    async def sweep_orphans(self, at: float | None = None) -> int:
        """Delete blobs older than BLOB_ORPHAN_AGE that no task refers to; returns how many."""
        at = time.time() if at is None else at
        deleted = 0
        for prefix in (keys.INPUT_BLOBS, keys.OUTPUT_BLOBS, INCOMING):
            batch: list[BlobInfo] = []
            async for info in self.blobs.list(prefix):
                if at - info.modified < self.orphan_age:
                    continue
                batch.append(info)
                if len(batch) >= BATCH:
                    deleted += await self._drop_orphans(prefix, batch)
                    batch = []
            deleted += await self._drop_orphans(prefix, batch)
        return deleted

    async def _drop_orphans(self, prefix: str, batch: list[BlobInfo]) -> int:
        if not batch:
            return 0
        if prefix == INCOMING:
            orphans = batch  # an upload never takes BLOB_ORPHAN_AGE
        else:
            fields = (
                ("input_blob",) if prefix == keys.INPUT_BLOBS else ("output_blob", "segments_blob")
            )
            async with self.redis.pipeline(transaction=False) as pipe:
                for info in batch:
                    pipe.hmget(keys.task(keys.blob_task_id(info.name)), fields)
                owners = await pipe.execute()
            orphans = [
                info
                for info, named in zip(batch, owners, strict=True)
                if info.name.encode() not in named
            ]
        for info in orphans:
            await self.blobs.delete(info.name)
            log.info("orphan_blob_deleted", blob=info.name, size=info.size)
        return len(orphans)

    async def _sweep_if_due(self) -> None:
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.orphan_age / 2
        # One replica per period: the others would only list the same store again.
        if await self.redis.set(
            keys.BLOB_SWEEP_LOCK, self.owner, nx=True, ex=max(1, int(self.orphan_age / 2))
        ):
            removed = await self.sweep_orphans(now)
            log.info("orphan_sweep_done", deleted=removed)

    async def run(self, stop: asyncio.Event) -> None:
        """Every BLOB_SWEEP_INTERVAL: due deletions, and the orphan sweep when its turn
        comes. A store or Redis that is away is waited for, never fatal."""
        while not stop.is_set():
            try:
                deleted = await self.delete_due()
                if deleted:
                    log.info("due_blobs_deleted", deleted=deleted)
                await self._sweep_if_due()
            except BlobUnavailable as exc:
                log.warning("janitor_blob_store_unavailable", error=str(exc))
            except REDIS_DOWN_ERRORS as exc:
                log.warning("janitor_redis_unavailable", error=str(exc))
                await wait_for_redis(self.redis, stop=stop)
                continue
            except RedisError as exc:
                if not storage_full(exc):
                    raise
                # Redis at maxmemory refuses the sweep lock: skip this round.
                log.warning("janitor_storage_full", error=str(exc))
            if await pause(stop, self.interval):
                return
