"""The /v1 operations in the OpenAPI document, and their error shape there.

The shared steps (build_spec's default answer, policy.document's 401 and 429) point every
error at the native ``Error`` schema; :func:`document` repoints /v1's at ``OpenAIError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from marshmallow import Schema

from services.gateway.openai.encoders import SPEECH_FORMATS
from services.gateway.openai.errors import PREFIX
from services.gateway.openai.sync import PRIORITY_HEADER
from services.gateway.openapi import operation
from shared.tasks import PRIORITY_ORDER

H = TypeVar("H", bound=Callable[..., Any])

ERROR_REF = "#/components/schemas/OpenAIError"
NATIVE_ERROR_REF = "#/components/schemas/Error"

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "OpenAI's error family"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "description": "the gateway's error code"},
                "task_id": {"type": "string", "format": "uuid"},
            },
        }
    },
}


def _error(description: str, **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if headers:
        response["headers"] = headers
    return response


_TASK_HEADERS = {
    "Location": {
        "description": "the task's status URL, /api/v1/tasks/{task_id}",
        "required": True,
        "schema": {"type": "string"},
    },
    "x-should-retry": {
        "description": "false: a retry would queue another task",
        "required": True,
        "schema": {"type": "string", "enum": ["false"]},
    },
}

_PRIORITY = {
    "name": PRIORITY_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": [p.value for p in PRIORITY_ORDER]},
    "description": "queue to wait in (default normal)",
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "description": "a repeat with the same key waits for the first call's task",
}

_TASK_ERRORS = {
    "400": _error("invalid input; nothing was stored"),
    "408": _error("the body did not arrive within BODY_TIMEOUT seconds"),
    "413": _error("the body exceeds the size limit"),
    "415": _error("wrong Content-Type"),
    "422": _error("the Idempotency-Key was used for a different request"),
    "409": _error("the task was cancelled while the call waited (task_cancelled)", **_TASK_HEADERS),
    "502": _error("the task failed (code task_failed); the message says why", **_TASK_HEADERS),
    "503": _error("Redis or the blob store is unreachable; not accepted"),
    "504": _error(
        "the task did not end within SYNC_WAIT seconds (code sync_wait_exceeded); it is"
        " still queued: poll Location",
        **_TASK_HEADERS,
    ),
}

_TEXT = {"schema": {"type": "string"}}
_TRANSCRIPT = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "task": {"type": "string", "enum": ["transcribe"]},
        "language": {"type": "string"},
        "duration": {"type": "number"},
        "segments": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "start", "end", "text"],
                "properties": {
                    "id": {"type": "integer"},
                    "start": {"type": "number"},
                    "end": {"type": "number"},
                    "text": {"type": "string"},
                },
            },
        },
    },
}


def transcription_operation(schema: Schema) -> Callable[[H], H]:
    return operation(
        "Transcribe audio (OpenAI-compatible)",
        tags=["openai"],
        description="OpenAI's audio transcription call; waits for the task, at most SYNC_WAIT"
        " seconds (docs/openai.md).",
        parameters=[_PRIORITY, _IDEMPOTENCY],
        requestBody={
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        },
        responses={
            "200": {
                "description": "the transcript in response_format",
                "content": {
                    "application/json": {"schema": _TRANSCRIPT},
                    "text/plain": _TEXT,
                    "application/x-subrip": _TEXT,
                    "text/vtt": _TEXT,
                },
            },
            **_TASK_ERRORS,
        },
    )


def speech_operation(schema: Schema) -> Callable[[H], H]:
    audio = {"schema": {"type": "string", "format": "binary"}}
    return operation(
        "Text to speech (OpenAI-compatible)",
        tags=["openai"],
        description="OpenAI's speech call; waits for the task, at most SYNC_WAIT seconds"
        " (docs/openai.md).",
        parameters=[_PRIORITY, _IDEMPOTENCY],
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": schema}},
        },
        responses={
            "200": {
                "description": "the audio in response_format",
                "content": {f.media_type: audio for f in SPEECH_FORMATS.values()},
            },
            **_TASK_ERRORS,
        },
    )


def models_operation(handler: H) -> H:
    model = {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["model"]},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    }
    listing = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": model},
        },
    }
    return operation(
        "The model names /v1 accepts (OpenAI-compatible)",
        tags=["openai"],
        responses={
            "200": {
                "description": "OpenAI's list",
                "content": {"application/json": {"schema": listing}},
            }
        },
    )(handler)


def document(spec: dict[str, Any]) -> None:
    """Add ``OpenAIError`` and point every /v1 error answer at it."""
    spec["components"]["schemas"]["OpenAIError"] = OPENAI_ERROR
    for path, operations in spec["paths"].items():
        if not path.startswith(PREFIX):
            continue
        for op in operations.values():
            for response in op["responses"].values():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema == {"$ref": NATIVE_ERROR_REF}:
                    schema["$ref"] = ERROR_REF
