"""The blob store's contract: what the gateway and the validator may do with a blob.

A blob is an immutable byte string under a name such as ``inputs/3f/<task id>``. Names are
made in :mod:`shared.keys`; the store only maps them to files or S3 objects. Every backend
raises :class:`BlobUnavailable` when the store cannot be used right now (unreachable,
refusing, out of space) and :class:`BlobNotFound` for a name it does not hold, so callers
never see a backend's own exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

#: Bytes per chunk when a blob is streamed.
CHUNK_BYTES = 256 * 1024
#: Names under this prefix are uploads not yet committed (the file backend's temporary
#: files); listed so that the orphan sweep removes those a crash left behind.
INCOMING = ".incoming/"


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobUnavailable(BlobError):
    """The store cannot be used right now; retry later. The message says why, briefly."""


class BlobNotFound(BlobError):
    """No blob has that name (never written, deleted or expired)."""


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob, as a listing shows it."""

    name: str
    size: int
    modified: float  # unix seconds


class Blob(Protocol):
    """An open blob: its size is known before its bytes are read (Content-Length)."""

    size: int

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The bytes in order; raises :class:`BlobUnavailable` if the store fails midway."""
        ...

    async def close(self) -> None:
        """Release the file or connection (idempotent; reading to the end also does)."""
        ...


class BlobUpload(Protocol):
    """A blob being written chunk by chunk; invisible under its name until committed."""

    size: int

    async def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    async def commit(self) -> None:
        """Make the blob visible under its name (all or nothing)."""
        ...

    async def abort(self) -> None:
        """Drop what was written; nothing is left behind (idempotent, never raises)."""
        ...


class BlobStore(Protocol):
    """What services use; :func:`shared.blobs.open_blob_store` picks the backend."""

    #: "file" or "s3", for health and logs.
    backend: str
    #: Where blobs go (a directory or ``s3://bucket/prefix``), for health and logs.
    location: str

    async def start(self) -> None:
        """Open clients and create the root if missing; failures are logged, not raised."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return if the store is usable now, else raise :class:`BlobUnavailable`."""
        ...

    async def put(self, name: str, data: bytes | bytearray) -> None:
        """Store ``data`` under ``name`` (replacing any blob of that name)."""
        ...

    def upload(self, name: str) -> BlobUpload:
        """Start writing ``name`` in chunks; commit or abort the returned upload."""
        ...

    async def open(self, name: str) -> Blob:
        """Open ``name`` for streaming; raises :class:`BlobNotFound` if absent."""
        ...

    async def read(self, name: str) -> bytes:
        """The whole blob (only for blobs known to be small); :class:`BlobNotFound`."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; a missing blob is not an error."""
        ...

    def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Every blob whose name starts with ``prefix``, in no particular order."""
        ...
