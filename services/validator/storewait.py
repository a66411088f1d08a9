"""The validator while the blob store is away: tasks wait, pending, and nothing is lost.

A task whose input cannot be read goes back to ``pending`` (clients see it waiting, not
failing) while its worker keeps the stream entry and its heartbeat, so no other replica
takes it and a replica that dies meanwhile has it reclaimed as usual. Once the store
answers again the task is marked processing and started over. An answer that cannot be
written waits in memory until it can. Neither case spends an attempt or fails a task.
"""

from __future__ import annotations

import asyncio

from shared.blobs import BlobStore, BlobUnavailable
from shared.logging import get_logger
from shared.store import TaskStore
from shared.tasks import Status, Task

log = get_logger("validator.storewait")

FIRST_DELAY = 0.5
MAX_DELAY = 10.0


async def wait_for_blobs(blobs: BlobStore, reason: str, task_id: str) -> None:
    """Ping the store, backing off, until it answers; never gives up (cancellation, on
    shutdown, ends the wait and releases the entry)."""
    delay = FIRST_DELAY
    while True:
        try:
            await blobs.ping()
            log.info("blob_store_back", task_id=task_id, reason=reason)
            return
        except BlobUnavailable as exc:
            log.warning(
                "blob_store_unavailable",
                task_id=task_id,
                reason=reason,
                error=str(exc),
                retry_in=delay,
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)


async def park(store: TaskStore, task: Task) -> Task | None:
    """Put ``task`` back to pending until the store answers, then mark it processing
    again; the task as stored then, or None when it was finished elsewhere meanwhile."""
    assert store.blobs is not None
    await store.transition(task.task_id, Status.PENDING, expect=[Status.PROCESSING])
    await wait_for_blobs(store.blobs, "input", task.task_id)
    if not await store.transition(
        task.task_id, Status.PROCESSING, expect=[Status.PENDING, Status.PROCESSING]
    ):
        return None
    return await store.get(task.task_id)
