"""The /v1 request schemas (marshmallow), which also document them in the OpenAPI spec.

Fields OpenAI's clients send that the subnet cannot honour are accepted and ignored
(docs/openai.md), and so are fields this gateway does not know (``unknown = EXCLUDE``),
as OpenAI-compatible servers do: clients add new ones often.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from services.gateway.openai import models
from services.gateway.openai.encoders import SPEECH_FORMATS
from services.gateway.openai.formats import FORMATS
from services.gateway.schemas import CodedLength, Problem, audio_upload, not_blank
from services.gateway.settings import GatewaySettings
from shared.tasks import TaskType

#: Longest ignored free-text field kept in a request (OpenAI's prompt limit is 224 tokens).
MAX_IGNORED_TEXT = 4096
GRANULARITIES = "timestamp_granularities[]"


def one_of(choices: list[str], code: str, what: str) -> Any:
    """A validator naming every supported choice in its message."""

    def check(value: str) -> None:
        if value not in choices:
            raise ValidationError(
                Problem(code, f"{what} {value!r} is not supported; supported: {', '.join(choices)}")
            )

    return check


def _model(task_type: TaskType) -> fields.String:
    names = models.names(task_type)
    return fields.String(
        required=True,
        validate=one_of(names, "model_not_found", "model"),
        metadata={"description": "a name GET /v1/models lists", "enum": names},
    )


def _ignored(field: fields.Field, what: str) -> fields.Field:
    field.metadata["description"] = f"{what}; accepted and ignored (docs/openai.md)"
    return field


def _schema(name: str, own: dict[str, fields.Field]) -> Schema:
    meta = type("Meta", (), {"unknown": EXCLUDE})
    return type(name, (Schema,), {"Meta": meta, **own})()


def transcription_schema(settings: GatewaySettings) -> Schema:
    """``POST /v1/audio/transcriptions``' multipart form."""
    file = audio_upload(settings)
    languages = list(settings.allowed_languages)
    return _schema(
        "OpenAITranscriptionRequest",
        {
            "file": file,
            "model": _model(TaskType.TRANSCRIPTION),
            "language": fields.String(
                load_default=settings.default_language,
                validate=one_of(languages, "invalid_language", "language"),
                metadata={"description": "ISO 639-1 code of the speech", "enum": languages},
            ),
            "response_format": fields.String(
                load_default="json",
                validate=one_of(list(FORMATS), "unsupported_response_format", "response_format"),
                metadata={"enum": list(FORMATS)},
            ),
            "prompt": _ignored(
                fields.String(validate=validate.Length(max=MAX_IGNORED_TEXT)), "a prompt"
            ),
            "temperature": _ignored(
                fields.Float(validate=validate.Range(min=0, max=1)), "sampling temperature"
            ),
            GRANULARITIES: _ignored(
                # At most both: a form holds at most MAX_PARTS parts (uploads.py).
                fields.List(
                    fields.String(validate=validate.OneOf(["word", "segment"])),
                    validate=validate.Length(max=2),
                ),
                "timestamp granularities",
            ),
            "stream": fields.Boolean(
                validate=_no_stream,
                metadata={"description": "only false: no streaming", "enum": [False]},
            ),
        },
    )


def _no_stream(value: bool) -> None:
    if value:
        raise ValidationError(
            Problem("stream_unsupported", "stream: streamed transcriptions are not supported")
        )


def speech_schema(settings: GatewaySettings) -> Schema:
    """``POST /v1/audio/speech``' JSON body."""
    speech_formats = list(SPEECH_FORMATS)
    return _schema(
        "OpenAISpeechRequest",
        {
            "model": _model(TaskType.TTS),
            "input": fields.String(
                required=True,
                validate=[not_blank, CodedLength("input_too_long", max=settings.tts_max_chars)],
                metadata={"description": "the text to speak", "pattern": r"\S"},
            ),
            "voice": _ignored(
                fields.String(validate=validate.Length(max=MAX_IGNORED_TEXT)), "a voice name"
            ),
            "response_format": fields.String(
                load_default="mp3",
                validate=one_of(speech_formats, "unsupported_response_format", "response_format"),
                metadata={"enum": speech_formats},
            ),
            "speed": _ignored(
                fields.Float(validate=validate.Range(min=0.25, max=4.0)), "speaking speed"
            ),
            "instructions": _ignored(
                fields.String(validate=validate.Length(max=MAX_IGNORED_TEXT)),
                "voice instructions",
            ),
        },
    )
