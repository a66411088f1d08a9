"""Waiting for a task to end (temporary: polls the store; the events branch replaces it)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway.state import STORE
from shared.tasks import FINAL_STATUSES, Task

_POLL = 0.2


async def wait_final(app: web.Application, task_id: str, timeout: float) -> Task | None:  # noqa: ASYNC109
    """The task once it is final, or None when ``timeout`` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        task = await app[STORE].get(task_id)
        if task is not None and task.status in FINAL_STATUSES:
            return task
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(_POLL, remaining))
