"""The /v1 handlers: transcriptions, speech and the model list (docs/openai.md).

Each call is an ordinary task, stored by the shared submission path (same validation
limits, blob store upload, API keys, rate limits, Idempotency-Key), then waited for
(:mod:`services.gateway.openai.sync`) and answered in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from aiohttp import web
from marshmallow import Schema

from services.gateway.bodies import body_timeout, read_json
from services.gateway.openai import encoders, formats, models, sync
from services.gateway.openai.docs import models_operation, speech_operation, transcription_operation
from services.gateway.openai.errors import TaskError
from services.gateway.openai.schemas import GRANULARITIES
from services.gateway.openai.staging import CopyingStaging
from services.gateway.schemas import load
from services.gateway.state import SETTINGS, STORE, SUBMISSION_KINDS
from services.gateway.storage import BLOBS, storage_errors
from services.gateway.submissions import TaskKind
from services.gateway.uploads import ClientGone, read_form
from shared import keys
from shared.http import Handler
from shared.tasks import Task, TaskType, new_task_id

log = structlog.get_logger("gateway.openai")

#: The status a client that left is logged with (nginx's "client closed request").
CLIENT_CLOSED = 499


def _kind(app: web.Application, task_type: TaskType) -> TaskKind:
    return next(k for k in app[SUBMISSION_KINDS] if k.task_type is task_type)


def _native(field: str, value: Any, language: str, priority: str) -> dict[str, Any]:
    """The native submission's validated fields for the same task."""
    return {field: value, "source_language": language, "priority": priority, "callback_url": None}


async def _output(request: web.Request, task: Task) -> bytes:
    with storage_errors("status"):
        output = await request.app[STORE].data.read_output(task)
    if output is None:
        raise TaskError(
            502,
            "output_missing",
            f"task {task.task_id} completed but its output has expired",
            task.task_id,
            str(request.app.router["get_task"].url_for(task_id=task.task_id)),
        )
    return output


def transcriptions_handler(schema: Schema) -> Handler:
    """OpenAI's ``POST /v1/audio/transcriptions``, validating with ``schema``."""

    @transcription_operation(schema)
    async def transcriptions(request: web.Request) -> web.StreamResponse:
        return await transcribe(request, schema)

    return transcriptions


class _AllBut:
    """Every field name but ``names``: the form fields that may come more than once."""

    def __init__(self, names: set[str]) -> None:
        self.names = frozenset(names)

    def __contains__(self, name: object) -> bool:
        return name not in self.names


async def transcribe(request: web.Request, schema: Schema) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    priority = sync.priority(request)
    deadline = (
        contextlib.nullcontext()
        if request.content.is_eof()
        else asyncio.timeout(settings.body_timeout)
    )
    staging = CopyingStaging(app[BLOBS], keys.input_blob(new_task_id()), settings.blob_spool_dir)
    # Arrays (timestamp_granularities[]) repeat, and so may fields this gateway ignores.
    repeatable = _AllBut(set(schema.fields) - {GRANULARITIES})
    try:
        try:
            with storage_errors("upload"):
                async with deadline:
                    raw = await read_form(
                        request, {"file"}, settings.max_upload_bytes, staging, repeatable
                    )
        except TimeoutError:
            return await body_timeout(request, settings.body_timeout)
        except ClientGone as exc:
            log.info("upload_abandoned", path=request.path, received=exc.received)
            return web.Response(status=CLIENT_CLOSED)
        data = load(schema, raw)
        staging.copy.seek(0)
        duration = await asyncio.to_thread(encoders.duration, staging.copy)
        staging.copy.close()  # not kept for the wait
        native = _native("audio_file", data["file"], data["language"], priority)
        task = await sync.run(request, _kind(app, TaskType.TRANSCRIPTION), native)
        text = (await _output(request, task)).decode("utf-8", errors="replace")
        segments = None
        if data["response_format"] in formats.TIMED:
            with storage_errors("status"):
                segments = await app[STORE].data.read_segments(task)
    except TaskError as exc:
        return exc.response()
    except sync.ClientLeft:
        return web.Response(status=CLIENT_CLOSED)
    finally:
        await staging.abort()
    transcript = formats.Transcript(task.task_id, text, task.language, duration, segments)
    return formats.respond(transcript, data["response_format"])


def speech_handler(schema: Schema) -> Handler:
    """OpenAI's ``POST /v1/audio/speech``, validating with ``schema``."""

    @speech_operation(schema)
    async def speech(request: web.Request) -> web.StreamResponse:
        return await speak(request, schema)

    return speech


async def speak(request: web.Request, schema: Schema) -> web.StreamResponse:
    app = request.app
    priority = sync.priority(request)
    data = load(schema, await read_json(request))
    native = _native("text", data["input"], app[SETTINGS].default_language, priority)
    try:
        task = await sync.run(request, _kind(app, TaskType.TTS), native)
        wav = await _output(request, task)
    except TaskError as exc:
        return exc.response()
    except sync.ClientLeft:
        return web.Response(status=CLIENT_CLOSED)
    response_format = data["response_format"]
    try:
        audio = await asyncio.to_thread(encoders.encode, wav, response_format)
    except encoders.AudioError as exc:
        log.warning("speech_encode_failed", task_id=task.task_id, error=str(exc))
        location = str(app.router["get_task"].url_for(task_id=task.task_id))
        return TaskError(502, "encoding_failed", str(exc), task.task_id, location).response()
    media_type = encoders.SPEECH_FORMATS[response_format].media_type
    return web.Response(body=audio, content_type=media_type)


@models_operation
async def list_models(request: web.Request) -> web.Response:
    """OpenAI's ``GET /v1/models``."""
    return web.json_response(models.listing())
