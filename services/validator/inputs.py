"""A task's input as the validator uses it: read from the store once, held once.

Transcription audio is streamed from the blob store straight into the miners' JSON body,
base64-encoded chunk by chunk into one buffer of the exact final size: the validator holds
that body (4/3 of the audio) and nothing else of the input, shares it between every miner
and attempt of the task, and sends it in slices (:mod:`services.validator.client`). The
reference pipeline gets the audio streamed from the store anew. Text inputs are small and
simply read whole.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.validator.client import MinerRequest
from services.validator.tasktypes import TaskSpec
from shared.blobs import Blob, BlobNotFound
from shared.store import TaskStore
from shared.taskdata import BytesBlob
from shared.tasks import Task


@contextlib.asynccontextmanager
async def _closing(blob: Blob | BytesBlob) -> AsyncIterator[Blob | BytesBlob]:
    """Close a blob even when reading it fails midway."""
    try:
        yield blob
    finally:
        await blob.close()


@dataclass(frozen=True)
class TaskInput:
    """The input of one task being processed."""

    store: TaskStore
    task: Task
    data: bytes | None  # the whole input for text tasks; None for audio (streamed)
    size: int

    async def chunks(self) -> AsyncIterator[bytes]:
        """The input's bytes from the store, read afresh (for the reference pipeline)."""
        if self.data is not None:
            yield self.data
            return
        blob = await self.store.open_input(self.task)
        if blob is None:
            raise BlobNotFound(self.task.input_blob or self.task.task_id)
        async for chunk in blob.chunks():
            yield chunk

    @property
    def text(self) -> bytes:
        """What the judges compare against: the text input (empty for audio)."""
        return self.data or b""


def _frame(task: Task, timeout: float) -> tuple[bytes, bytes]:
    """The body's JSON around the input string, exactly as MinerRequest.body() writes it."""
    head = json.dumps(
        {"task_id": task.task_id, "task_type": task.task_type.value, "language": task.language},
        separators=(",", ":"),
    )
    tail = json.dumps({"timeout": timeout}, separators=(",", ":"))
    return f'{head[:-1]},"input":"'.encode(), f'",{tail[1:]}'.encode()


async def prepare(
    store: TaskStore, task: Task, spec: TaskSpec, miner_timeout: float
) -> tuple[TaskInput, MinerRequest] | None:
    """The task's input and the request every miner gets; None if the input is gone.
    Raises :class:`shared.blobs.BlobUnavailable` while the store is away."""
    blob = await store.open_input(task)
    if blob is None:
        return None
    if not spec.binary_input:
        async with _closing(blob):
            data = b"".join([chunk async for chunk in blob.chunks()])
        source = TaskInput(store, task, data, len(data))
        request = MinerRequest(
            task.task_id,
            task.task_type.value,
            task.language,
            spec.encode_input(data),
            miner_timeout,
        )
        return source, request
    head, tail = _frame(task, miner_timeout)
    body = bytearray(len(head) + 4 * ((blob.size + 2) // 3) + len(tail))
    body[: len(head)] = head
    at, carry = len(head), b""
    async with _closing(blob):
        async for chunk in blob.chunks():
            chunk = carry + chunk
            whole = len(chunk) - len(chunk) % 3
            encoded = base64.b64encode(memoryview(chunk)[:whole])
            body[at : at + len(encoded)] = encoded
            at += len(encoded)
            carry = chunk[whole:]
    encoded = base64.b64encode(carry)
    body[at : at + len(encoded)] = encoded
    at += len(encoded)
    if at + len(tail) != len(body):
        # The store's size and its bytes disagree: better no task than a corrupt body.
        raise BlobNotFound(f"{task.input_blob}: size changed while it was read")
    body[at:] = tail
    source = TaskInput(store, task, None, blob.size)
    request = MinerRequest(
        task.task_id, task.task_type.value, task.language, "", miner_timeout, encoded=body
    )
    return source, request
