"""Streaming multipart/form-data reading: the file part goes to the blob store as it arrives.

aiohttp's ``request.post()`` buffers every field in memory (and ``client_max_size`` does not
lift its multipart field limits), so the form is read part by part here. The audio part is
written to a blob store upload chunk by chunk while it is counted and hashed, and refused
with 413 as soon as it passes the limit: the gateway holds one chunk of it at a time,
whatever its size. Its first bytes are kept for content sniffing. Whatever goes wrong
before the task is stored (413, a malformed body, a client that disconnects, the store
failing), :class:`Staging` aborts the upload, so nothing is left behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Container
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http import HttpProcessingError

from services.gateway.audio import HEAD_BYTES
from services.gateway.errors import ApiError
from services.gateway.schemas import Upload
from shared.blobs import BlobStore, BlobUpload

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


class ClientGone(Exception):
    """The client closed the connection before its body was complete: nobody to answer."""

    def __init__(self, received: int) -> None:
        super().__init__(f"client disconnected after {received} bytes of the file")
        self.received = received


class Staging:
    """The blob uploads of one request: each file part is written under ``name``.

    :meth:`abort` drops every upload not yet committed; handlers call it in a ``finally``,
    so only a stored task keeps its input blob.
    """

    def __init__(self, blobs: BlobStore, name: str) -> None:
        self.blobs = blobs
        self.name = name
        self.uploads: list[BlobUpload] = []

    def start(self) -> BlobUpload:
        upload = self.blobs.upload(self.name)
        self.uploads.append(upload)
        return upload

    async def abort(self) -> None:
        for upload in self.uploads:
            await upload.abort()


async def read_form(
    request: web.Request,
    file_fields: Collection[str],
    max_file_bytes: int,
    staging: Staging,
    repeatable: Container[str] = (),
) -> dict[str, Any]:
    """Read a multipart form: text fields as str, ``file_fields`` as :class:`Upload`
    (streamed into ``staging``, not committed), ``repeatable`` text fields as lists of str
    (array fields such as ``timestamp_granularities[]``). Raises :class:`ClientGone` when
    the client disconnects midway."""
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
    parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "invalid_multipart", "nested multipart bodies are not accepted")
            name = part.name
            if not name:
                raise ApiError(400, "invalid_multipart", "a form part has no name")
            if name in form and name not in repeatable:
                raise ApiError(400, "duplicate_field", f"{name} is given twice", name)
            parts += 1
            if parts > MAX_PARTS:
                raise ApiError(400, "invalid_multipart", f"more than {MAX_PARTS} form fields")
            if name in repeatable:
                form.setdefault(name, []).append(await _read_text(part, name))
            elif name in file_fields:
                form[name] = await _read_file(part, name, max_file_bytes, staging)
            else:
                form[name] = await _read_text(part, name)
    except ConnectionResetError:
        # aiohttp's "Connection lost": an ordinary event, not an error of the gateway.
        raise ClientGone(sum(u.size for u in staging.uploads)) from None
    except (ValueError, HttpProcessingError) as exc:
        # aiohttp's multipart parser reports a malformed body (no boundary, bad framing) as
        # ValueError, and a malformed part head as HttpProcessingError (found by fuzzing).
        raise ApiError(400, "invalid_multipart", f"malformed multipart body: {exc}") from None
    return form


async def _read_file(part: BodyPartReader, name: str, limit: int, staging: Staging) -> Upload:
    upload = staging.start()
    digest = hashlib.sha256()
    head = b""
    size = 0
    while chunk := await part.read_chunk(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise _too_large(name, limit)
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
        digest.update(chunk)
        await upload.write(chunk)
    return Upload(
        filename=part.filename,
        content_type=part.headers.get("Content-Type"),
        size=size,
        head=bytes(head),
        sha256=digest.hexdigest(),
        blob=upload,
        blob_name=staging.name,
    )


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
