"""Streaming multipart/form-data reading with a byte counter on the file part.

aiohttp's ``request.post()`` enforces ``client_max_size`` on every field alike (0 turns
it off for all), so the form is read part by part here: the audio part is counted chunk by
chunk and refused with 413 as soon as it passes the limit, never read whole first.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http import HttpProcessingError

from services.gateway.errors import ApiError
from services.gateway.schemas import Upload

CHUNK_BYTES = 64 * 1024
#: Largest non-file form field; the longest legitimate one is a 2,048-character URL.
MAX_FIELD_BYTES = 16 * 1024
#: Parts accepted in one form: the four documented fields plus room for mistakes that the
#: schema then names (unknown field) rather than a blunt refusal.
MAX_PARTS = 16
#: Slack over the file limit for the other fields and part headers when Content-Length
#: is known up front: a longer body cannot be valid and is refused before reading it.
FORM_OVERHEAD = 1024 * 1024

MULTIPART = "multipart/form-data"


async def read_form(
    request: web.Request, file_fields: Collection[str], max_file_bytes: int
) -> dict[str, Any]:
    """Read a multipart form: text fields as str, ``file_fields`` as :class:`Upload`."""
    if request.content_type != MULTIPART:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected {MULTIPART}, got {request.content_type or 'no Content-Type'}",
        )
    length = request.content_length
    if length is not None and length > max_file_bytes + FORM_OVERHEAD:
        raise _too_large(next(iter(file_fields), None), max_file_bytes)
    form: dict[str, Any] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "invalid_multipart", "nested multipart bodies are not accepted")
            name = part.name
            if not name:
                raise ApiError(400, "invalid_multipart", "a form part has no name")
            if name in form:
                raise ApiError(400, "duplicate_field", f"{name} is given twice", name)
            if len(form) >= MAX_PARTS:
                raise ApiError(400, "invalid_multipart", f"more than {MAX_PARTS} form fields")
            if name in file_fields:
                form[name] = await _read_file(part, name, max_file_bytes)
            else:
                form[name] = await _read_text(part, name)
    except (ValueError, HttpProcessingError) as exc:
        # aiohttp's multipart parser reports a malformed body (no boundary, bad framing) as
        # ValueError, and a malformed part head as HttpProcessingError (found by fuzzing).
        raise ApiError(400, "invalid_multipart", f"malformed multipart body: {exc}") from None
    return form


async def _read_file(part: BodyPartReader, name: str, limit: int) -> Upload:
    # One growing buffer, handed on as is: joining chunks would hold the file twice.
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        if len(data) + len(chunk) > limit:
            raise _too_large(name, limit)
        data += chunk
    return Upload(filename=part.filename, content_type=part.headers.get("Content-Type"), data=data)


async def _read_text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise ApiError(
                413, "field_too_large", f"{name} is longer than {MAX_FIELD_BYTES} bytes", name
            )
    try:
        return data.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise ApiError(400, "invalid_encoding", f"{name} is not valid UTF-8 text", name) from None


def _too_large(name: str | None, limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the file is larger than {limit} bytes", name)
