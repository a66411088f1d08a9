"""Reading tasks: one task's status, its raw output, and the newest-first listing.

Only the identity that submitted a task (its API key, or its address when anonymous) can
read or list it. Anyone else gets the same 404 as for a task that does not exist, so
task ids cannot be probed."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from aiohttp import web

from services.gateway.errors import ApiError
from services.gateway.openapi import error_response, json_content, operation
from services.gateway.responses import TaskList, TaskView
from services.gateway.schemas import TaskListQuery, TaskQuery, load
from services.gateway.state import IDENTITY, STORE
from services.gateway.storage import storage_errors
from services.gateway.waiting import wait_final
from shared.blobs import BlobUnavailable
from shared.http import REQUEST_ID_HEADER, REQUEST_ID_KEY
from shared.store import TaskStore
from shared.tasks import (
    FINAL_STATUSES,
    MAX_INLINE_OUTPUT,
    OUTPUT_MEDIA_TYPE,
    Status,
    Task,
    output_path,
    public_view,
)

log = structlog.get_logger("gateway.tasks")

_LIST_QUERY = TaskListQuery()
_TASK_QUERY = TaskQuery()

TASK_ID_PARAM = {
    "name": "task_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
    "description": "the task_id a submission answered",
}


async def find_task(request: web.Request) -> Task:
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


async def task_json(store: TaskStore, task: Task) -> dict[str, Any]:
    """``task`` as GET /api/v1/tasks/{id} shows it (its output read when completed)."""
    output, url = None, None
    if task.status is Status.COMPLETED:
        url = output_path(task.task_id)
        if task.output_size is None or task.output_size <= MAX_INLINE_OUTPUT:
            with storage_errors("status"):
                output = await store.data.read_output(task)
    return public_view(task, output, output_url=url)


@operation(
    "A task's status and, once completed, its result",
    tags=["tasks"],
    parameters=[TASK_ID_PARAM, {"in": "query", "schema": TaskQuery}],
    responses={
        "200": {"description": "the task", "content": json_content(TaskView)},
        "400": error_response("wait is not a number from 0 to 60 (code invalid_wait)"),
        "404": error_response(
            "no such task, it expired after RESULT_TTL, or another identity submitted it"
        ),
        "503": error_response("Redis or the blob store is unreachable"),
    },
)
async def get_task(request: web.Request) -> web.Response:
    """The seed README's shape; a completed task's result carries output_data (base64) up
    to 1 MiB of output, and output_url (its raw output) always. With ?wait=N it answers
    as soon as the task is final, or after N seconds with its state then."""
    query = load(_TASK_QUERY, dict(request.query))
    task = await find_task(request)
    if query.get("wait") and task.status not in FINAL_STATUSES:
        task = await wait_final(request.app, task.task_id, query["wait"]) or task
    return web.json_response(await task_json(request.app[STORE], task))


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
        "503": error_response("Redis or the blob store is unreachable"),
    },
)
async def get_output(request: web.Request) -> web.StreamResponse:
    """The output bytes themselves, with the media type of the task's kind, streamed from
    the blob store chunk by chunk with Content-Length."""
    store = request.app[STORE]
    task = await find_task(request)
    if task.status is not Status.COMPLETED:
        raise ApiError(
            409, "output_not_ready", f"the task is {task.status.value}, not completed", "task_id"
        )
    with storage_errors("output"):
        blob = await store.open_output(task)
    if blob is None:
        raise ApiError(404, "output_not_found", "the task's output has expired", "task_id")
    response = web.StreamResponse(headers={"Content-Type": OUTPUT_MEDIA_TYPE[task.task_type]})
    response.content_length = blob.size
    response.headers[REQUEST_ID_HEADER] = request.get(REQUEST_ID_KEY, "")
    try:
        await response.prepare(request)
        async for chunk in blob.chunks():
            await response.write(chunk)
    except BlobUnavailable as exc:
        # The head is sent: closing short of Content-Length is how the client learns.
        log.warning("output_stream_failed", task_id=task.task_id, error=str(exc))
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionResetError:
        log.info("output_stream_abandoned", task_id=task.task_id)
        return response
    finally:
        await blob.close()
    await response.write_eof()
    return response


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
