"""Following a task to its final status: the events stream first, polling where it fails.

``GET /api/v1/tasks/{id}/events`` (Server-Sent Events) sends the task's JSON on every
status change, starting with its current state and ending after a final one. A stream
that breaks is reopened with ``Last-Event-ID`` (the gateway resumes after that event);
after :data:`RECONNECTS` failures in a row, or on a gateway without the stream (404 for
the route, 405), :func:`wait` polls ``GET /api/v1/tasks/{id}?wait=N`` instead.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import connect_sse

from audio_client.errors import AudioClientError, ConnectionFailed, WaitTimeout, from_response
from audio_client.models import Task

if TYPE_CHECKING:
    from audio_client.client import Client

log = logging.getLogger("audio_client")

#: Seconds the stream may go without a byte before it counts as broken: the gateway sends
#: a keep-alive comment at least every 15 s.
STREAM_IDLE = 45.0
#: Reconnections in a row, without an event in between, before falling back to polling.
RECONNECTS = 3
#: Longest ``?wait=`` of one poll: also how stale a poll's progress can be.
POLL_WAIT = 10


class EventsUnavailable(AudioClientError):
    """The gateway has no events stream (an older version): poll instead."""


def events(client: Client, task_id: str, *, timeout: float | None = None) -> Iterator[Task]:
    """Each state the stream sends, ending with a final one (see the module's doc)."""
    return _events(client, task_id, _deadline(timeout), timeout)


def wait(
    client: Client,
    task_id: str,
    *,
    timeout: float | None = None,
    on_update: Callable[[Task], Any] | None = None,
) -> Task:
    """The task once final; ``on_update`` sees every new state on the way."""
    deadline = _deadline(timeout)
    notify = _Changes(on_update)
    try:
        for task in _events(client, task_id, deadline, timeout):
            notify(task)
            if task.final:
                return task
    except (EventsUnavailable, ConnectionFailed) as exc:
        log.info("events stream unavailable, polling instead: %s", exc)
    return _poll(client, task_id, deadline, timeout, notify)


def _events(
    client: Client, task_id: str, deadline: float | None, timeout: float | None
) -> Iterator[Task]:
    path = f"/api/v1/tasks/{task_id}/events"
    last_id: str | None = None
    latest: Task | None = None
    failures = 0
    retry = 0.5  # seconds before a reconnection; the stream's own `retry:` field wins
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            with connect_sse(
                client._http,
                "GET",
                path,
                headers=headers,
                timeout=_stream_timeout(client, deadline),
            ) as source:
                _check(source.response)
                for sse in source.iter_sse():
                    if sse.retry is not None:
                        retry = sse.retry / 1000
                    last_id = sse.id or last_id
                    if not sse.data:
                        continue
                    latest = Task.from_json(json.loads(sse.data))
                    failures = 0
                    yield latest
                    if latest.final:
                        return
            problem = "the stream ended before a final status"
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            raise WaitTimeout(latest or client.get(task_id), timeout or 0)
        failures += 1
        if failures > RECONNECTS:
            raise ConnectionFailed(f"events stream of {task_id}: {problem}")
        log.info("events stream broke (%s); reconnecting after event %s", problem, last_id)
        time.sleep(_capped(retry * 2 ** (failures - 1), deadline))


def _check(response: httpx.Response) -> None:
    """Raise for an error answer; EventsUnavailable when the route itself is missing."""
    if response.is_error:
        response.read()
        error = from_response(response)
        if (error.status == 404 and error.code == "not_found") or error.status in (405, 501):
            raise EventsUnavailable(str(error))
        raise error
    media = response.headers.get("content-type", "").partition(";")[0].strip()
    if media != "text/event-stream":
        raise EventsUnavailable(f"the events route answered {media or 'no content type'}")


def _poll(
    client: Client,
    task_id: str,
    deadline: float | None,
    timeout: float | None,
    notify: _Changes,
) -> Task:
    while True:
        remaining = _remaining(deadline)
        asked = POLL_WAIT if remaining is None else max(1, min(POLL_WAIT, math.ceil(remaining)))
        started = time.monotonic()
        task = client.get(task_id, wait=asked)
        notify(task)
        if task.final:
            return task
        remaining = _remaining(deadline)
        if remaining is not None and remaining <= 0:
            raise WaitTimeout(task, timeout or 0)
        if time.monotonic() - started < asked / 2:
            # The gateway answered without waiting (one without ?wait=): pace the polls.
            time.sleep(_capped(client.poll_interval, deadline))


class _Changes:
    """Calls ``on_update`` once per distinct state (a reconnected stream repeats one)."""

    def __init__(self, on_update: Callable[[Task], Any] | None) -> None:
        self.on_update = on_update
        self.seen: tuple[str, int, str | None] | None = None

    def __call__(self, task: Task) -> None:
        key = (task.status, task.attempts, task.updated_at)
        if key != self.seen:
            self.seen = key
            if self.on_update is not None:
                self.on_update(task)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _capped(seconds: float, deadline: float | None) -> float:
    remaining = _remaining(deadline)
    return max(0.0, seconds if remaining is None else min(seconds, remaining))


def _stream_timeout(client: Client, deadline: float | None) -> httpx.Timeout:
    remaining = _remaining(deadline)
    idle = STREAM_IDLE if remaining is None else max(0.1, min(STREAM_IDLE, remaining))
    return httpx.Timeout(client.timeout, read=idle)
