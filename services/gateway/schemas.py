"""Request schemas (marshmallow) and how their errors become API errors.

The same schema instances validate submissions and, through apispec, describe them in
``/api/v1/openapi.json``, so the documented limits are the enforced ones. Limits and the
language list come from settings, hence the schemas are built per app by
:func:`submission_schemas`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from services.gateway.audio import sniff
from services.gateway.errors import ApiError
from services.gateway.settings import GatewaySettings
from shared.blobs import BlobUpload
from shared.tasks import PRIORITY_ORDER, Priority, Status, TaskType

MAX_CALLBACK_URL = 2048
DEFAULT_PAGE = 10
MAX_PAGE = 100


class Problem(str):
    """A validation message that carries its own API error code through marshmallow."""

    code: str

    def __new__(cls, code: str, message: str) -> Problem:
        obj = super().__new__(cls, message)
        obj.code = code
        return obj


class CodedLength(validate.Length):
    """:class:`validate.Length` (so apispec still emits minLength/maxLength) with a code."""

    def __init__(self, code: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.code = code

    def __call__(self, value: Any) -> Any:
        try:
            return super().__call__(value)
        except ValidationError as exc:
            raise ValidationError(Problem(self.code, str(exc.messages[0]))) from None


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: An absolute http(s) URL: a host name or IPv4 address (dot-separated labels) or a
#: bracketed IPv6 literal, an optional port, then optionally a path, query or fragment of
#: visible ASCII. The OpenAPI document carries this very expression as the field's
#: pattern, so what the spec admits and what the gateway accepts cannot drift apart.
CALLBACK_URL = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?(?:[/?#][!-~]*)?$"
)
_CALLBACK_URL = re.compile(CALLBACK_URL)


def is_callback_url(value: str) -> None:
    """Reject anything but an absolute http(s) URL (:data:`CALLBACK_URL`)."""
    if not _CALLBACK_URL.fullmatch(value):
        raise ValidationError(
            Problem("invalid_callback_url", "callback_url: not an absolute http(s) URL")
        )


def not_blank(value: str) -> None:
    """Reject text that is empty or only whitespace."""
    if not value.strip():
        raise ValidationError(Problem("blank_text", "text must not be blank"))


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart form, streamed into a blob store upload (``blob``, not
    yet committed) as it arrived: its size, first bytes and SHA-256 were taken on the way."""

    filename: str | None
    content_type: str | None
    size: int
    head: bytes  # the first HEAD_BYTES bytes, for content sniffing
    sha256: str  # hex digest, for Idempotency-Key fingerprints
    blob: BlobUpload
    blob_name: str  # the name it gets on commit: keys.input_blob(its task id)


class UploadField(fields.Field):
    """A multipart file part; documented as a binary string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Upload:
        if not isinstance(value, Upload):
            raise ValidationError(Problem("invalid_file", "must be a file part"))
        return value


def is_audio(upload: Upload) -> None:
    """Reject an empty file, and one whose first bytes are no supported audio container."""
    if not upload.size:
        raise ValidationError(Problem("empty_file", "the uploaded file is empty"))
    if sniff(upload.head) is None:
        raise ValidationError(
            Problem("not_audio", "the file is not WAV, MP3, FLAC, OGG, M4A or WebM audio")
        )


class StrictSchema(Schema):
    """Base of every request schema: unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = RAISE


class TaskListQuery(StrictSchema):
    """Query string of ``GET /api/v1/tasks``."""

    status = fields.String(
        validate=validate.OneOf([st.value for st in Status]),
        metadata={"description": "only tasks in this status", "error_code": "invalid_status"},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": "page size", "error_code": "invalid_limit"},
    )
    cursor = fields.Integer(
        validate=validate.Range(min=0),
        metadata={
            "description": "next_cursor of the previous page",
            "error_code": "invalid_cursor",
        },
    )


#: Longest ``?wait=`` of ``GET /api/v1/tasks/{id}`` (seconds).
MAX_WAIT = 60


class TaskQuery(Schema):
    """Query string of ``GET /api/v1/tasks/{id}``. Other parameters are ignored, as they
    always were (cache busters)."""

    class Meta:
        unknown = EXCLUDE

    wait = fields.Float(
        validate=validate.Range(min=0, max=MAX_WAIT),
        allow_nan=False,
        metadata={
            "description": f"seconds (at most {MAX_WAIT}) to wait for the task to end before"
            " answering; it answers as soon as the task is final",
            "error_code": "invalid_wait",
        },
    )


def _options(settings: GatewaySettings, *, form: bool) -> dict[str, fields.Field]:
    """The fields every task type shares (fresh instances: fields are bound to one schema).
    A form cannot carry null, so there callback_url is a string or left out."""
    return {
        "source_language": fields.String(
            load_default=settings.default_language,
            validate=validate.OneOf(
                settings.allowed_languages,
                error="unsupported language {input!r}; see the documented list",
            ),
            metadata={
                "description": "ISO 639-1 code of the input's language (Whisper's codes)",
                "error_code": "invalid_language",
            },
        ),
        "priority": fields.String(
            load_default=Priority.NORMAL.value,
            validate=validate.OneOf([p.value for p in PRIORITY_ORDER]),
            metadata={"description": "queue to wait in", "error_code": "invalid_priority"},
        ),
        "callback_url": fields.String(
            # A form leaves it out (no default shown in the spec); JSON may say null.
            **({} if form else {"load_default": None, "allow_none": True}),
            validate=[validate.Length(max=MAX_CALLBACK_URL), is_callback_url],
            metadata={
                "description": "absolute http(s) URL that receives the task when it finishes",
                "error_code": "invalid_callback_url",
                "pattern": CALLBACK_URL,
            },
        ),
    }


def _schema(
    name: str, own: dict[str, fields.Field], settings: GatewaySettings, *, form: bool = False
) -> Schema:
    return type(name, (StrictSchema,), {**own, **_options(settings, form=form)})()


def _text(max_chars: int, what: str) -> dict[str, fields.Field]:
    return {
        "text": fields.String(
            required=True,
            validate=[not_blank, CodedLength("text_too_long", max=max_chars)],
            # not_blank as the spec says it: at least one character that is not whitespace.
            metadata={"description": what, "error_code": "invalid_text", "pattern": r"\S"},
        )
    }


def audio_upload(settings: GatewaySettings, **metadata: str) -> UploadField:
    """The required audio part of a form (native and /v1), within MAX_UPLOAD_BYTES."""
    return UploadField(
        required=True,
        validate=is_audio,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "WAV, MP3, FLAC, OGG, M4A or WebM audio, at most "
            f"{settings.max_upload_bytes} bytes",
            **metadata,
        },
    )


def submission_schemas(settings: GatewaySettings) -> dict[TaskType, Schema]:
    """One request schema per task type, with this deployment's limits and languages."""
    audio_file = audio_upload(settings, error_code="invalid_file")
    return {
        TaskType.TRANSCRIPTION: _schema(
            "TranscriptionSubmission", {"audio_file": audio_file}, settings, form=True
        ),
        TaskType.TTS: _schema(
            "TtsSubmission", _text(settings.tts_max_chars, "text to speak"), settings
        ),
        TaskType.SUMMARIZATION: _schema(
            "SummarizationSubmission",
            _text(settings.summarization_max_chars, "text to summarize"),
            settings,
        ),
    }


def load(schema: Schema, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``schema.load(raw)``, turning the first validation error into a 400 :class:`ApiError`."""
    try:
        return schema.load(raw)
    except ValidationError as exc:
        raise first_error(schema, exc) from None


def first_error(schema: Schema, exc: ValidationError) -> ApiError:
    """The error to report: unknown fields first, then fields in declaration order."""
    messages = exc.normalized_messages()
    order = [n for n in messages if n not in schema.fields] + list(schema.fields)
    name = next(n for n in order if n in messages)
    problem = messages[name]
    message = problem[0] if isinstance(problem, list) else problem
    field = schema.fields.get(name)
    if field is None:
        return ApiError(400, "unknown_field", f"unknown field {name!r}", name)
    if isinstance(message, Problem):
        return ApiError(400, message.code, str(message), name)
    if message == field.error_messages["required"]:
        return ApiError(400, "missing_field", f"{name} is required", name)
    return ApiError(
        400, field.metadata.get("error_code", "invalid_field"), f"{name}: {message}", name
    )
