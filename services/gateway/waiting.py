"""Waiting for a task to end, woken by its events (no polling loop per waiter).

Used by ``GET /api/v1/tasks/{id}?wait=N`` and by the OpenAI-compatible endpoints, which
answer only once their task is final (or SYNC_WAIT has passed).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway.state import EVENT_HUB, STORE
from shared.tasks import FINAL_STATUSES, Task


# The signature is the contract the OpenAI endpoints call: ``timeout`` stays a parameter.
async def wait_final(app: web.Application, task_id: str, timeout: float) -> Task | None:  # noqa: ASYNC109
    """The task as soon as it is final, else its state after ``timeout`` seconds; None if
    it does not exist (or expired meanwhile). No owner check: callers make their own."""
    store = app[STORE]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    hub = app[EVENT_HUB]
    async with hub.watch(task_id) as watch:
        while True:
            # Read after subscribing: an event from here on wakes the watch.
            task = await store.get(task_id)
            remaining = deadline - loop.time()
            if task is None or task.status in FINAL_STATUSES or remaining <= 0 or hub.closing:
                return task
            await watch.wait(remaining)
