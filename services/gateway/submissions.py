"""Task submission: one table row per task type, one code path for all of them.

A request goes (after the auth and rate-limit middlewares): read the body (multipart or
JSON, within BODY_TIMEOUT; an audio part streams into a blob store upload) -> validate with
the type's schema -> :func:`submit` (commit the upload, estimate, store atomically, count)
-> 202 with Location. Nothing touches Redis before validation passes, and an upload is
aborted unless its task was stored, so a rejected request stores nothing. :func:`submit`
takes an already validated request, the caller's identity (stored as the task's owner)
and, with an Idempotency-Key, the claim that the store checks in the same script that
stores the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from marshmallow import Schema

from services.gateway import eta, idempotency
from services.gateway.bodies import JSON, body_timeout, read_json
from services.gateway.errors import RETRY_AFTER, ApiError
from services.gateway.idempotency import Claim
from services.gateway.metrics import METRICS
from services.gateway.openapi import error_response, json_content, operation
from services.gateway.ratelimit import DEFERRED, Deferred
from services.gateway.responses import SubmissionAccepted
from services.gateway.schemas import Upload, load, submission_schemas
from services.gateway.settings import GatewaySettings
from services.gateway.state import IDENTITY, REDIS, SETTINGS, STORE
from services.gateway.storage import BLOBS, storage_errors
from services.gateway.uploads import MULTIPART, ClientGone, Staging, read_form
from shared import keys
from shared.buckets import TokenRefused, bucket_from_reply
from shared.http import Handler, json_response
from shared.redis import REDIS_UNAVAILABLE
from shared.replication import NotReplicated
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

    async def read(
        self, request: web.Request, settings: GatewaySettings, staging: Staging
    ) -> dict[str, Any]:
        """The raw, not yet validated fields of the request body (a file part streamed
        into ``staging``)."""
        if self.media_type == MULTIPART:
            return await read_form(request, {self.input_field}, settings.max_upload_bytes, staging)
        return await read_json(request)


def task_kinds(settings: GatewaySettings) -> tuple[TaskKind, ...]:
    schemas = submission_schemas(settings)
    return tuple(
        TaskKind(task_type, label, media, field, schemas[task_type])
        for task_type, label, media, field in _TABLE
    )


async def submit(
    app: web.Application,
    kind: TaskKind,
    data: dict[str, Any],
    owner: str | None,
    claim: Claim | None = None,
    deferred: Deferred | None = None,
) -> web.Response:
    """Queue a validated submission: 202 with the seed README's body and Location. With an
    Idempotency-Key ``claim``, a repeat gets the first answer instead (or 422). With a
    ``deferred`` rate-limit token (no claim), the token is taken in the script that stores
    the task: 429 if there is none, and nothing is stored.

    The input is what the validator hands to miners: an :class:`Upload` (committed here,
    under the task id its staging name carries) or text (stored as UTF-8). A blob store
    that is away gets 503 ``storage_unavailable``; the upload is then not committed."""
    accepted = await accept(app, kind, data, owner, claim, deferred)
    if accepted.replay is not None:
        return accepted.replay
    return json_response(accepted.body, status=202, headers={"Location": accepted.location})


@dataclass(frozen=True)
class Accepted:
    """A stored submission: its task id, the 202 body and Location, or (an Idempotency-Key
    repeat) the first answer to replay, whose body names the task."""

    task_id: str
    body: dict[str, Any]
    location: str
    replay: web.Response | None = None


async def accept(
    app: web.Application,
    kind: TaskKind,
    data: dict[str, Any],
    owner: str | None,
    claim: Claim | None = None,
    deferred: Deferred | None = None,
) -> Accepted:
    """:func:`submit`'s work, for API surfaces that answer in their own shape (/v1)."""
    with storage_errors("submit"):
        return await _submit(app, kind, data, owner, claim, deferred)


async def _submit(
    app: web.Application,
    kind: TaskKind,
    data: dict[str, Any],
    owner: str | None,
    claim: Claim | None,
    deferred: Deferred | None,
) -> Accepted:
    settings = app[SETTINGS]
    value = data[kind.input_field]
    upload = value if isinstance(value, Upload) else None
    payload = None if upload else value.encode()
    task = Task(
        task_id=keys.blob_task_id(upload.blob_name) if upload else new_task_id(),
        task_type=kind.task_type,
        language=data["source_language"],
        priority=Priority(data["priority"]),
        callback_url=data.get("callback_url"),
        input_size=upload.size if upload else len(payload or b""),
        owner=owner,
    )
    if upload:
        await upload.blob.commit()
        task.input_blob = upload.blob_name
    store = app[STORE]
    location = str(app.router["get_task"].url_for(task_id=task.task_id))
    guard_key = None
    try:
        if claim is None:
            # The estimate's reads ride in the create script: one Redis round trip, not two.
            probe = eta.probe(task.task_type, task.priority, samples=settings.eta_samples)
            token = deferred.token() if deferred else None
            try:
                _, snapshot = await store.create_probed(task, payload, probe, token)
            except TokenRefused as refused:
                assert deferred is not None
                raise deferred.refused(refused.bucket) from None
            if deferred is not None and snapshot.bucket is not None:
                deferred.given(snapshot.bucket)
            estimate = eta.from_snapshot(
                snapshot, task.task_type, concurrency=settings.max_concurrent_tasks
            )
            body = _accepted(kind, task, estimate)
        else:
            # The stored answer holds the estimate, so it is read before the script runs.
            estimate = await eta.estimate(
                app[REDIS],
                task.task_type,
                task.priority,
                samples=settings.eta_samples,
                concurrency=settings.max_concurrent_tasks,
            )
            body = _accepted(kind, task, estimate)
            guard = claim.guard(body, location)
            guard_key = guard.key
            stored = await store.create_once(task, payload, guard)
            if stored is not None:
                log.info("idempotent_replay", task_type=task.task_type.value, owner=owner)
                replay = claim.replay(stored)
                first = json.loads(stored)
                return Accepted(first["body"]["task_id"], first["body"], first["location"], replay)
    except NotReplicated as exc:
        if deferred is not None and claim is None and int(exc.reply[0]) == 1:
            deferred.given(bucket_from_reply(exc.reply[4:7]))  # the token was spent
        await _withdraw(app, task, guard_key, exc)
        raise ApiError(
            503,
            "not_replicated",
            f"the task was not confirmed by {exc.wanted} Redis replica(s) in time and was"
            " not accepted; retry later",
            headers={"Retry-After": RETRY_AFTER},
        ) from None
    app[METRICS].submitted(task.task_type.value, task.priority.value)
    log.info(
        "task_submitted",
        task_id=task.task_id,
        task_type=task.task_type.value,
        priority=task.priority.value,
        input_size=task.input_size,
        estimate=estimate,
        owner=owner,
    )
    return Accepted(task.task_id, body, location)


async def _withdraw(
    app: web.Application, task: Task, guard_key: str | None, exc: NotReplicated
) -> None:
    """Undo a submission answered 503 although its script ran (see TaskStore.withdraw)."""
    if int(exc.reply[0]) != 1:
        return  # an Idempotency-Key replay wrote nothing
    try:
        withdrawn = await app[STORE].withdraw(
            task.task_id, "not accepted: Redis replicas did not confirm it in time", guard_key
        )
    except REDIS_UNAVAILABLE as error:
        # The master is going away; what it held without its replicas goes with it.
        log.warning("withdraw_failed", task_id=task.task_id, error=str(error))
        return
    log.warning(
        "task_not_replicated",
        task_id=task.task_id,
        acked=exc.acked,
        wanted=exc.wanted,
        withdrawn=withdrawn,
    )


def _accepted(kind: TaskKind, task: Task, estimate: int) -> dict[str, Any]:
    """The 202 body (the seed README's shape)."""
    return {
        "task_id": task.task_id,
        "status": Status.PENDING.value,
        "message": kind.message,
        "estimated_completion_time": estimate,
        "task_type": task.task_type.value,
        "source_language": task.language,
    }


def submission_handler(kind: TaskKind) -> Handler:
    """The POST handler for one task type, documented from the same schema it validates with."""

    async def handler(request: web.Request) -> web.Response:
        settings = request.app[SETTINGS]
        key = idempotency.header_value(request)
        # A body that has fully arrived (most JSON bodies, with their headers) cannot stall:
        # no deadline timer to arm and cancel then.
        deadline = (
            contextlib.nullcontext()
            if request.content.is_eof()
            else asyncio.timeout(settings.body_timeout)
        )
        staging = Staging(request.app[BLOBS], keys.input_blob(new_task_id()))
        try:
            try:
                with storage_errors("upload"):
                    async with deadline:
                        raw = await kind.read(request, settings, staging)
            except TimeoutError:
                return await body_timeout(request, settings.body_timeout)
            except ClientGone as exc:
                # One line, no traceback: a client leaving is an ordinary event.
                log.info("upload_abandoned", path=request.path, received=exc.received)
                return web.Response(status=499)
            data = load(kind.schema, raw)
            owner = request.get(IDENTITY)
            claim = None
            if key is not None:
                fingerprint = idempotency.fingerprint(kind.task_type.value, data)
                claim = Claim(owner or "", key, fingerprint, settings.idempotency_ttl)
            deferred = request.get(DEFERRED) if claim is None else None
            return await submit(request.app, kind, data, owner, claim, deferred)
        finally:
            await staging.abort()

    handler.__name__ = f"submit_{kind.task_type.value}"
    too_large = "the audio file" if kind.media_type == MULTIPART else "the JSON body"
    return operation(
        f"Submit a {kind.label} task",
        tags=["tasks"],
        description=f"Queue a {kind.task_type.value} task. Answers 202 with "
        "`Location: /api/v1/tasks/{task_id}`; poll that URL for the result.",
        parameters=[idempotency.PARAMETER],
        requestBody={"required": True, "content": {kind.media_type: {"schema": kind.schema}}},
        responses={
            "202": {
                "description": "queued",
                "headers": {
                    "Location": {
                        "description": "the task's status URL",
                        "schema": {"type": "string"},
                    },
                    idempotency.REPLAYED_HEADER: {
                        "description": "true when this is the stored answer to an earlier "
                        "request with the same Idempotency-Key",
                        "schema": {"type": "string", "enum": ["true"]},
                    },
                },
                "content": json_content(SubmissionAccepted),
            },
            "400": error_response("invalid input; nothing was stored"),
            "408": error_response("the body did not arrive within BODY_TIMEOUT seconds"),
            "413": error_response(f"{too_large} exceeds the size limit"),
            "415": error_response(f"the body is not {kind.media_type}"),
            "422": error_response("the Idempotency-Key was used for a different request"),
            "503": {
                **error_response(
                    "Redis is unreachable or switching masters (redis_unavailable), full"
                    " (storage_full: maxmemory reached), or its replicas did not confirm the"
                    " task in time (not_replicated, REDIS_MIN_REPLICAS_ACK), or the blob"
                    " store is unreachable (storage_unavailable); not accepted"
                ),
                "headers": {
                    "Retry-After": {
                        "description": "seconds to wait before retrying",
                        "schema": {"type": "integer"},
                    }
                },
            },
        },
    )(handler)
