"""Waiting for a task to end (temporary: polls the store; the events branch replaces it)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway.state import STORE
from shared.tasks import FINAL_STATUSES, Task

_POLL = 0.2


async def wait_final(app: web.Application, task_id: str, timeout: float) -> Task | None:  # noqa: ASYNC109
    """The task as soon as it is final, else its state after ``timeout`` seconds; None if
    it does not exist."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task = await app[STORE].get(task_id)
        remaining = deadline - loop.time()
        if task is None or task.status in FINAL_STATUSES or remaining <= 0:
            return task
        await asyncio.sleep(min(_POLL, remaining))
