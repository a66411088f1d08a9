"""A synchronous /v1 call: store an ordinary task through the shared submission path,
then wait for it to end, at most SYNC_WAIT seconds.

The wait is :func:`services.gateway.waiting.wait_final`, woken by the task's completion.
A client that goes away ends the wait (its task stays queued and runs): the gateway runs
without aiohttp's handler cancellation (uploads rely on seeing the disconnect as a read
error), so the connection is checked once a second, a look at the socket, not at Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from services.gateway import idempotency
from services.gateway.errors import ApiError
from services.gateway.idempotency import Claim
from services.gateway.openai.errors import TaskError
from services.gateway.state import IDENTITY, SETTINGS
from services.gateway.submissions import TaskKind, accept
from services.gateway.waiting import wait_final
from shared.tasks import FINAL_STATUSES, PRIORITY_ORDER, Priority, Status, Task

log = structlog.get_logger("gateway.openai")

PRIORITY_HEADER = "X-Priority"
#: Seconds between looks at the client's connection during a wait.
DISCONNECT_CHECK = 1.0


class ClientLeft(Exception):
    """The client closed its connection while its call waited."""


def priority(request: web.Request) -> str:
    """The queue named by X-Priority (default normal); 400 for another value."""
    value = request.headers.get(PRIORITY_HEADER, Priority.NORMAL.value).strip().lower()
    choices = [p.value for p in PRIORITY_ORDER]
    if value not in choices:
        raise ApiError(
            400,
            "invalid_priority",
            f"{PRIORITY_HEADER} {value!r} is not one of {', '.join(choices)}",
            PRIORITY_HEADER,
        )
    return value


async def run(request: web.Request, kind: TaskKind, data: dict[str, Any]) -> Task:
    """Store the task ``data`` describes (the native submission's validated fields) and
    wait for it: the completed task, or :class:`TaskError` (504 still running, 502 failed,
    409 cancelled), or :class:`ClientLeft`."""
    app, owner = request.app, request.get(IDENTITY)
    claim = None
    key = idempotency.header_value(request)
    if key is not None:
        fingerprint = idempotency.fingerprint(kind.task_type.value, data)
        claim = Claim(owner or "", key, fingerprint, app[SETTINGS].idempotency_ttl)
    # Shielded: a cancelled handler must not leave a half-made submission behind.
    accepted = await asyncio.shield(accept(app, kind, data, owner, claim))
    task_id, location = accepted.task_id, accepted.location
    seconds = app[SETTINGS].sync_wait
    task = await _wait(request, task_id, seconds)
    if task is None or task.status not in FINAL_STATUSES:
        log.info("sync_wait_exceeded", task_id=task_id, seconds=seconds)
        raise TaskError(
            504,
            "sync_wait_exceeded",
            f"task {task_id} did not finish within {seconds:g} s (SYNC_WAIT); it is still "
            f"queued: poll {location}",
            task_id,
            location,
        )
    if task.status is Status.FAILED:
        raise TaskError(
            502, "task_failed", f"task {task_id} failed: {task.error}", task_id, location
        )
    if task.status is not Status.COMPLETED:
        # Another final status (cancelled, with DELETE /api/v1/tasks/{id}): no result.
        status = task.status.value
        raise TaskError(409, f"task_{status}", f"task {task_id} was {status}", task_id, location)
    return task


async def _wait(request: web.Request, task_id: str, seconds: float) -> Task | None:
    waiter = asyncio.ensure_future(wait_final(request.app, task_id, seconds))
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=DISCONNECT_CHECK)
            transport = request.transport
            if not waiter.done() and (transport is None or transport.is_closing()):
                log.info("sync_client_left", task_id=task_id)
                raise ClientLeft(task_id)
        return waiter.result()
    finally:
        waiter.cancel()
