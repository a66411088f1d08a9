"""Reading tasks: one task's status, its raw output, and the newest-first listing.

Only the identity that submitted a task (its API key, or its address when anonymous) can
read or list it. Anyone else gets the same 404 as for a task that does not exist, so
task ids cannot be probed."""

from __future__ import annotations

import uuid

from aiohttp import web

from services.gateway.errors import ApiError
from services.gateway.openapi import error_response, json_content, operation
from services.gateway.responses import TaskList, TaskView
from services.gateway.schemas import TaskListQuery, load
from services.gateway.state import IDENTITY, STORE
from shared.tasks import OUTPUT_MEDIA_TYPE, Status, Task, public_view

_LIST_QUERY = TaskListQuery()

TASK_ID_PARAM = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "the task_id a submission answered",
}


async def _find(request: web.Request) -> Task:
    """The caller's task, or 404. Ids that are no UUID cannot exist: Redis is not asked."""
    task_id = request.match_info["task_id"]
    try:
        uuid.UUID(task_id)
    except ValueError:
        task = None
    else:
        task = await request.app[STORE].get(task_id)
    if task is None or task.owner is None or task.owner != request.get(IDENTITY):
        raise ApiError(404, "task_not_found", f"no task {task_id!r}", "task_id")
    return task


@operation(
    "A task's status and, once completed, its result",
    tags=["tasks"],
    parameters=[TASK_ID_PARAM],
    responses={
        "200": {"description": "the task", "content": json_content(TaskView)},
        "404": error_response(
            "no such task, it expired after RESULT_TTL, or another identity submitted it"
        ),
        "503": error_response("Redis is unreachable"),
    },
)
async def get_task(request: web.Request) -> web.Response:
    """The seed README's shape; a completed task's result carries output_data (base64)."""
    store = request.app[STORE]
    task = await _find(request)
    output = await store.get_output(task.task_id) if task.status is Status.COMPLETED else None
    return web.json_response(public_view(task, output))


@operation(
    "A completed task's raw output",
    tags=["tasks"],
    parameters=[TASK_ID_PARAM],
    responses={
        "200": {
            "description": "audio/wav for TTS, UTF-8 text for transcription and summarization",
            "content": {
                "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        "404": error_response("no such task (or not the caller's), or its output expired"),
        "409": error_response("the task has not completed (code output_not_ready)"),
        "503": error_response("Redis is unreachable"),
    },
)
async def get_output(request: web.Request) -> web.Response:
    """The output bytes themselves, with the media type of the task's kind."""
    store = request.app[STORE]
    task = await _find(request)
    if task.status is not Status.COMPLETED:
        raise ApiError(
            409, "output_not_ready", f"the task is {task.status.value}, not completed", "task_id"
        )
    output = await store.get_output(task.task_id)
    if output is None:
        raise ApiError(404, "output_not_found", "the task's output has expired", "task_id")
    return web.Response(body=output, headers={"Content-Type": OUTPUT_MEDIA_TYPE[task.task_type]})


@operation(
    "List the caller's tasks, newest first",
    tags=["tasks"],
    parameters=[{"in": "query", "schema": TaskListQuery}],
    responses={
        "200": {"description": "one page of tasks", "content": json_content(TaskList)},
        "400": error_response("bad status, limit or cursor, or an unknown parameter"),
        "503": error_response("Redis is unreachable"),
    },
)
async def list_tasks(request: web.Request) -> web.Response:
    """Pages through the caller's own index (by status, or all of them). Listed results
    leave output_data null: fetch the task itself for its output."""
    query = load(_LIST_QUERY, dict(request.query))
    status = Status(query["status"]) if "status" in query else None
    tasks, cursor = await request.app[STORE].list(
        status=status,
        limit=query["limit"],
        cursor=query.get("cursor"),
        owner=request.get(IDENTITY, ""),
    )
    return web.json_response(
        {
            "tasks": [public_view(t) for t in tasks],
            "count": len(tasks),
            "next_cursor": str(cursor) if cursor is not None else None,
        }
    )
