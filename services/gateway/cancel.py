"""``DELETE /api/v1/tasks/{id}``: cancel a pending or processing task.

The cancellation is one conditional transition (shared.store) to the final status
``cancelled``: it can only win against pending or processing, so a task that completed or
failed first answers 409 and a validator finishing later loses (its transitions refuse a
final status). The same script queues the ``task.cancelled`` webhook, so it goes out even
with no validator running (the validators' webhook loop drains the queue when one runs),
and appends the event that wakes SSE watchers and the validator working on the task.
"""

from __future__ import annotations

import dataclasses

import structlog
from aiohttp import web

from services.gateway.errors import ApiError
from services.gateway.metrics import METRICS
from services.gateway.openapi import error_response, json_content, operation
from services.gateway.responses import TaskView
from services.gateway.state import REDIS, STORE
from services.gateway.tasks import TASK_ID_PARAM, find_task
from shared import timeline
from shared.blobs import BlobError
from shared.tasks import FINAL_STATUSES, Status, Task, now, public_view
from shared.webhookevents import delivery

log = structlog.get_logger("gateway.cancel")


def _already_final(task: Task) -> ApiError:
    return ApiError(
        409, "task_final", f"the task is already {task.status.value}: it cannot be cancelled"
    )


@operation(
    "Cancel a pending or processing task",
    tags=["tasks"],
    parameters=[TASK_ID_PARAM],
    responses={
        "200": {"description": "the task, now cancelled", "content": json_content(TaskView)},
        "404": error_response("no such task (or not the caller's), or it expired"),
        "409": error_response("the task already ended (code task_final)"),
        "503": error_response("Redis is unreachable or its replicas did not confirm"),
    },
)
async def cancel_task(request: web.Request) -> web.Response:
    """Cancels the task; its webhook (task.cancelled) and its input's release follow."""
    store = request.app[STORE]
    task = await find_task(request)
    if task.status in FINAL_STATUSES:
        raise _already_final(task)
    at = now()
    ended = dataclasses.replace(task, status=Status.CANCELLED, updated_at=at, completed_at=at)
    moved = await store.transition(
        task.task_id,
        Status.CANCELLED,
        expect=[Status.PENDING, Status.PROCESSING],
        at=at,
        webhook=delivery(ended, None),
    )
    current = await store.get(task.task_id)
    if not moved:
        if current is None:
            raise ApiError(404, "task_not_found", f"no task {task.task_id!r}", "task_id")
        raise _already_final(current)
    request.app[METRICS].cancellations.labels(task.task_type.value, task.status.value).inc()
    log.info("task_cancelled", task_id=task.task_id, was=task.status.value)
    await timeline.count(request.app[REDIS], Status.CANCELLED, task.created_at)
    try:
        await store.release_input(task)
    except BlobError as exc:
        # Scheduled by the transition already: the janitor deletes it when it can.
        log.warning("input_release_deferred", task_id=task.task_id, error=str(exc))
    return web.json_response(public_view(current or ended))
