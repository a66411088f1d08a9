"""Where a task's input and output bytes live: Redis for small ones, the blob store else.

Redis holds no value over :data:`INLINE_MAX` bytes: audio inputs, TTS outputs, any
larger text and a long transcript's timed segments go to the blob store, and the task hash
names the blob (``input_blob``, ``output_blob``, ``segments_blob``). Readers get inputs and
outputs of either kind through one interface, :class:`Blob`: a stored blob streams from
the store, a small value from memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from shared import keys
from shared.blobs import CHUNK_BYTES, Blob, BlobError, BlobNotFound, BlobStore, BlobUnavailable
from shared.ids import uuid4_hex
from shared.logging import get_logger
from shared.tasks import Task

log = get_logger("taskdata")

#: Largest value kept in Redis (inputs, outputs, webhook payloads); larger goes elsewhere.
INLINE_MAX = 64 * 1024


class BytesBlob:
    """Bytes already in memory, read like a stored blob."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._data = data
        self.size = len(data)

    async def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        view = memoryview(self._data)
        for start in range(0, self.size, chunk_bytes):
            yield bytes(view[start : start + chunk_bytes])

    async def close(self) -> None:
        return None


class TaskData:
    """Places and finds task bytes; ``blobs`` None keeps everything in Redis (only for
    tests of Redis-only logic: services always have a blob store)."""

    def __init__(self, redis: Redis, blobs: BlobStore | None) -> None:
        self.redis = redis
        self.blobs = blobs

    def _store(self) -> BlobStore:
        if self.blobs is None:
            raise BlobUnavailable("no blob store configured")
        return self.blobs

    def needs_blob(self, size: int, binary: bool = False) -> bool:
        """True when bytes of ``size`` must go to the blob store (binary: always)."""
        return self.blobs is not None and (binary or size > INLINE_MAX)

    async def place_input(self, task: Task, data: bytes | bytearray) -> bool:
        """Put a large input in the blob store before the task is created; True if it did
        (then ``task.input_blob`` names it and the create script stores no input key)."""
        if not self.needs_blob(len(data)):
            return False
        name = keys.input_blob(task.task_id)
        await self._store().put(name, data)
        task.input_blob = name
        return True

    async def place_output(self, task_id: str, output: bytes, binary: bool) -> str | None:
        """Write an output to the blob store if it belongs there; its blob name, or None
        when it stays in Redis."""
        if not self.needs_blob(len(output), binary):
            return None
        name = keys.output_blob(task_id, uuid4_hex()[:12])
        await self._store().put(name, output)
        return name

    async def place_result(
        self, task_id: str, result: dict[str, Any]
    ) -> tuple[dict[str, str], str | None]:
        """A completing task's hash fields for ``result``: its JSON, unless timed segments
        make it pass INLINE_MAX (a long recording's transcript); then the segments go to
        the blob store and ``segments_blob`` names them. Also the blob's name (None: none
        written), to :meth:`discard` if the task does not complete after all."""
        encoded = json.dumps(result)
        segments = result.get("segments")
        if len(encoded) <= INLINE_MAX or not segments or self.blobs is None:
            return {"result": encoded}, None
        name = keys.segments_blob(task_id, uuid4_hex()[:12])
        await self._store().put(name, json.dumps(segments).encode())
        rest = {k: v for k, v in result.items() if k != "segments"}
        return {"result": json.dumps(rest), "segments_blob": name}, name

    async def read_segments(self, task: Task) -> list[dict[str, Any]] | None:
        """A completed transcription's timed segments, from the result or the blob store;
        None when the miner gave none (or they expired)."""
        if not task.segments_blob:
            return (task.result or {}).get("segments")
        blob = await self._open(task.segments_blob)
        return None if blob is None else json.loads(await _read_all(blob))

    async def discard(self, name: str | None) -> None:
        """Delete a blob nothing refers to (after a failed create, a lost race). A store
        that is away leaves it to the orphan sweep."""
        if name is None or self.blobs is None:
            return
        try:
            await self.blobs.delete(name)
        except BlobError as exc:
            log.warning("blob_discard_failed", blob=name, error=str(exc))

    async def release(self, name: str) -> None:
        """Delete a blob whose deletion is scheduled (keys.BLOB_EXPIRY), and unschedule it."""
        await self._store().delete(name)
        await self.redis.zrem(keys.BLOB_EXPIRY, name)

    async def open_input(self, task: Task) -> BytesBlob | Blob | None:
        """The task's input, to stream; None if it is gone (expired, deleted)."""
        if task.input_blob:
            return await self._open(task.input_blob)
        data = await self.redis.get(keys.task_input(task.task_id))
        return None if data is None else BytesBlob(data)

    async def open_output(self, task: Task) -> BytesBlob | Blob | None:
        """The task's output, to stream (with its size for Content-Length); None if none."""
        if task.output_blob:
            return await self._open(task.output_blob)
        data = await self.redis.get(keys.task_output(task.task_id))
        return None if data is None else BytesBlob(data)

    async def read_input(self, task: Task) -> bytes | None:
        blob = await self.open_input(task)
        return None if blob is None else await _read_all(blob)

    async def read_output(self, task: Task) -> bytes | None:
        blob = await self.open_output(task)
        return None if blob is None else await _read_all(blob)

    async def _open(self, name: str) -> Blob | None:
        try:
            return await self._store().open(name)
        except BlobNotFound:
            return None


async def _read_all(blob: BytesBlob | Blob) -> bytes:
    return b"".join([chunk async for chunk in blob.chunks()])
