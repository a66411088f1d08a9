"""``GET /api/v1/tasks/{id}/events``: a task's status changes as Server-Sent Events.

One event per status change: ``event:`` the status, ``data:`` the same JSON as
``GET /api/v1/tasks/{id}`` at that change, ``id:`` its sequence number. A stream starts
with the task's current state (or, with ``Last-Event-ID``, with every event after that
one still kept) and ends after a final status. A comment (``: ping``) goes out every
KEEPALIVE seconds, so proxies keep the connection open. The events come from the task's
Redis stream (shared.events), so any replica serves any task.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from redis.exceptions import RedisError

from services.gateway.errors import ApiError
from services.gateway.metrics import METRICS
from services.gateway.openapi import error_response, operation
from services.gateway.state import EVENT_HUB, REDIS, STORE
from services.gateway.tasks import TASK_ID_PARAM, find_task, task_json
from shared.blobs import BlobError
from shared.events import Event, EventHub, read_events
from shared.tasks import FINAL_STATUSES, Task

log = structlog.get_logger("gateway.events")

#: Seconds between keep-alive comments; also how often a stream re-reads its task's
#: events even without a notification (pub/sub can drop one across a reconnect).
KEEPALIVE = 15.0
LAST_EVENT_ID = "Last-Event-ID"


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get(LAST_EVENT_ID, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(
            400,
            "invalid_last_event_id",
            "Last-Event-ID must be the id of an event this stream sent (a whole number)",
            LAST_EVENT_ID,
        )
    return int(raw)


async def _send(request: web.Request, sse: EventSourceResponse, event: Event) -> None:
    view = await task_json(request.app[STORE], event.task)
    await sse.send(json.dumps(view), id=str(event.seq), event=event.task.status.value)


def _current(task: Task) -> Event:
    """A task without an event stream (stored before events existed): its state as event
    0, so a reconnect with Last-Event-ID 0 gets every event that follows."""
    return Event(0, task)


@operation(
    "A task's status changes as Server-Sent Events",
    tags=["tasks"],
    parameters=[
        TASK_ID_PARAM,
        {
            "name": LAST_EVENT_ID,
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            "description": "the id of the last event received: the stream resumes after it",
        },
    ],
    responses={
        "200": {
            "description": "text/event-stream: one event per status change (event: the"
            " status, data: the task's JSON, id: its sequence number), from the current"
            " state to a final status; a ': ping' comment every 15 s",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        "400": error_response("Last-Event-ID is no whole number (code invalid_last_event_id)"),
        "404": error_response("no such task (or not the caller's), or it expired"),
        "503": error_response("Redis is unreachable"),
    },
)
async def task_events(request: web.Request) -> web.StreamResponse:
    """Sends the task's events until a final one, the task expires or the client leaves."""
    after = _last_event_id(request)
    task = await find_task(request)
    metrics = request.app[METRICS]
    metrics.event_streams.inc()
    try:
        return await _stream(request, task, after)
    finally:
        metrics.event_streams.dec()


async def _stream(request: web.Request, task: Task, after: int | None) -> web.StreamResponse:
    redis, hub = request.app[REDIS], request.app[EVENT_HUB]
    async with hub.watch(task.task_id) as watch:
        # Read once before the head is sent: a Redis failure is still a JSON 503 here.
        events = await read_events(redis, task.task_id, after)
        if not events and after is None:
            events = [_current(task)]
        async with sse_response(request, ping_interval=KEEPALIVE) as sse:
            try:
                while True:
                    for event in events:
                        await _send(request, sse, event)
                        after = event.seq
                        if event.task.status in FINAL_STATUSES:
                            return sse
                    if not sse.is_connected() or hub.closing:
                        return sse
                    if not events and not await _still_open(request, task.task_id):
                        return sse
                    await watch.wait(KEEPALIVE)
                    events = await read_events(redis, task.task_id, after)
            except (RedisError, BlobError, ApiError) as exc:
                # The head is sent: ending the stream is all that is left; the client
                # reconnects with Last-Event-ID and misses nothing.
                log.warning("events_stream_ended", task_id=task.task_id, error=str(exc))
                return sse
            except (ConnectionResetError, TimeoutError):
                # The client left, or stalled past aiohttp-sse's send timeout (aborted).
                log.info("events_client_gone", task_id=task.task_id)
                return sse


async def _still_open(request: web.Request, task_id: str) -> bool:
    """False once nothing more can come: the task is final (a reconnect after its last
    event) or gone (expired)."""
    current = await request.app[STORE].get(task_id)
    return current is not None and current.status not in FINAL_STATUSES


async def _close_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open handlers: streams end at once instead
    # of holding the shutdown until its timeout.
    app[EVENT_HUB].close()


async def event_hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx entry (after the Redis pool's): the process's event hub and its loop."""
    hub = app[EVENT_HUB] = EventHub(app[REDIS])
    app.on_shutdown.append(_close_streams)
    stop = asyncio.Event()
    loop = asyncio.create_task(hub.run(stop), name="gateway-event-hub")
    yield
    stop.set()
    await loop
