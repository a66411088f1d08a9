"""Task submission: one table row per task type, one code path for all of them.

A request goes: read the body (multipart or JSON) -> validate with the type's schema ->
:func:`submit` (estimate, store atomically, count) -> 202 with Location. Nothing touches
Redis before validation passes, so a rejected request stores nothing. :func:`submit` takes
an already validated request and the caller's identity, so API keys, rate limits and
Idempotency-Key can wrap it without knowing how bodies are parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from marshmallow import Schema

from services.gateway.bodies import JSON, read_json
from services.gateway.eta import estimate
from services.gateway.metrics import METRICS
from services.gateway.openapi import error_response, json_content, operation
from services.gateway.responses import SubmissionAccepted
from services.gateway.schemas import Upload, load, submission_schemas
from services.gateway.settings import GatewaySettings
from services.gateway.state import IDENTITY, REDIS, SETTINGS, STORE
from services.gateway.uploads import MULTIPART, read_form
from shared.http import Handler
from shared.tasks import Priority, Status, Task, TaskType, new_task_id

log = structlog.get_logger("gateway.submissions")

# task type, label in the answer's message, request media type, field stored as input
_TABLE: tuple[tuple[TaskType, str, str, str], ...] = (
    (TaskType.TRANSCRIPTION, "Transcription", MULTIPART, "audio_file"),
    (TaskType.TTS, "TTS", JSON, "text"),
    (TaskType.SUMMARIZATION, "Summarization", JSON, "text"),
)


@dataclass(frozen=True)
class TaskKind:
    """How one task type is submitted: path, body media type, schema, stored input field."""

    task_type: TaskType
    label: str
    media_type: str
    input_field: str
    schema: Schema

    @property
    def path(self) -> str:
        return f"/api/v1/{self.task_type.value}"

    @property
    def message(self) -> str:
        return f"{self.label} task submitted successfully"

    async def read(self, request: web.Request, settings: GatewaySettings) -> dict[str, Any]:
        """The raw, not yet validated fields of the request body."""
        if self.media_type == MULTIPART:
            return await read_form(request, {self.input_field}, settings.max_upload_bytes)
        return await read_json(request)

    def input_bytes(self, data: dict[str, Any]) -> bytes:
        """What the validator hands to miners: the audio bytes, or the text as UTF-8."""
        value = data[self.input_field]
        return value.data if isinstance(value, Upload) else value.encode()


def task_kinds(settings: GatewaySettings) -> tuple[TaskKind, ...]:
    schemas = submission_schemas(settings)
    return tuple(
        TaskKind(task_type, label, media, field, schemas[task_type])
        for task_type, label, media, field in _TABLE
    )


async def submit(
    app: web.Application, kind: TaskKind, data: dict[str, Any], owner: str | None
) -> dict[str, Any]:
    """Queue a validated submission; returns the 202 body (the seed README's shape)."""
    settings = app[SETTINGS]
    payload = kind.input_bytes(data)
    task = Task(
        task_id=new_task_id(),
        task_type=kind.task_type,
        language=data["source_language"],
        priority=Priority(data["priority"]),
        callback_url=data["callback_url"],
        input_size=len(payload),
        owner=owner,
    )
    eta = await estimate(
        app[REDIS],
        task.task_type,
        task.priority,
        samples=settings.eta_samples,
        concurrency=settings.max_concurrent_tasks,
    )
    await app[STORE].create(task, payload)
    app[METRICS].submissions.labels(task.task_type.value, task.priority.value).inc()
    log.info(
        "task_submitted",
        task_id=task.task_id,
        task_type=task.task_type.value,
        priority=task.priority.value,
        input_size=task.input_size,
        estimate=eta,
    )
    return {
        "task_id": task.task_id,
        "status": Status.PENDING.value,
        "message": kind.message,
        "estimated_completion_time": eta,
        "task_type": task.task_type.value,
        "source_language": task.language,
    }


def submission_handler(kind: TaskKind) -> Handler:
    """The POST handler for one task type, documented from the same schema it validates with."""

    async def handler(request: web.Request) -> web.Response:
        raw = await kind.read(request, request.app[SETTINGS])
        data = load(kind.schema, raw)
        body = await submit(request.app, kind, data, owner=request.get(IDENTITY))
        location = str(request.app.router["get_task"].url_for(task_id=body["task_id"]))
        return web.json_response(body, status=202, headers={"Location": location})

    handler.__name__ = f"submit_{kind.task_type.value}"
    too_large = "the audio file" if kind.media_type == MULTIPART else "the JSON body"
    return operation(
        f"Submit a {kind.label} task",
        tags=["tasks"],
        description=f"Queue a {kind.task_type.value} task. Answers 202 with "
        "`Location: /api/v1/tasks/{task_id}`; poll that URL for the result.",
        requestBody={"required": True, "content": {kind.media_type: {"schema": kind.schema}}},
        responses={
            "202": {
                "description": "queued",
                "headers": {
                    "Location": {
                        "description": "the task's status URL",
                        "schema": {"type": "string"},
                    }
                },
                "content": json_content(SubmissionAccepted),
            },
            "400": error_response("invalid input; nothing was stored"),
            "413": error_response(f"{too_large} exceeds the size limit"),
            "415": error_response(f"the body is not {kind.media_type}"),
            "503": error_response("Redis is unreachable; retry later"),
        },
    )(handler)
