"""Uploads into the blob store, and outputs out of it, against both backends: the audio is
stored as sent, refusals and failures leave nothing anywhere, the store being away gets
503 storage_unavailable, and outputs stream back with Content-Length."""

from __future__ import annotations

import asyncio
import base64

import pytest

from services.gateway.settings import MIB
from services.gateway.state import STORE
from shared import keys
from shared.taskdata import INLINE_MAX
from shared.tasks import MAX_INLINE_OUTPUT
from tests.blobstores import MotoServer, largest_redis_value, make_backend

from .conftest import assert_nothing_stored, audio_form, complete_task
from .test_uploads import BOUNDARY, _file_part_head


def _env(backend) -> dict[str, str]:
    return {name.lower(): value for name, value in backend.env.items()}


async def test_audio_streams_into_the_store(make_gateway, redis, backend, wav):
    client = await make_gateway(**_env(backend))
    audio = wav + bytes(range(256)) * 4000  # about 1 MB: several chunks
    resp = await client.post("/api/v1/transcription", data=audio_form(audio))
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    assert await backend.names() == [keys.input_blob(task_id)]
    assert await backend.store.read(keys.input_blob(task_id)) == audio
    assert await redis.exists(keys.task_input(task_id)) == 0


async def test_oversized_audio_leaves_nothing_in_the_store(make_gateway, redis, backend, wav):
    client = await make_gateway(max_upload_bytes=200_000, **_env(backend))
    resp = await client.post("/api/v1/transcription", data=audio_form(wav + b"\0" * 250_000))
    assert resp.status == 413
    await assert_nothing_stored(redis)
    assert await backend.names() == []


async def test_invalid_form_after_the_audio_leaves_nothing(make_gateway, redis, backend, wav):
    client = await make_gateway(**_env(backend))
    form = audio_form(wav, source_language="xx")
    resp = await client.post("/api/v1/transcription", data=form)
    assert (resp.status, (await resp.json())["error"]["code"]) == (400, "invalid_language")
    await assert_nothing_stored(redis)
    assert await backend.names() == []


async def test_client_disconnect_midway_leaves_nothing(make_gateway, redis, backend, wav):
    client = await make_gateway(**_env(backend))
    _, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        "POST /api/v1/transcription HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {4 * MIB}\r\n\r\n"
    ).encode()
    writer.write(head + _file_part_head() + wav + b"\0" * (2 * MIB))
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()
    # The gateway notices, aborts the upload and stores nothing.
    for _ in range(100):
        if not await backend.names():
            break
        await asyncio.sleep(0.05)
    await assert_nothing_stored(redis)
    assert await backend.names() == []
    assert (await client.get("/api/v1/health")).status == 200


async def test_idempotent_replay_keeps_one_input(make_gateway, redis, backend, wav):
    client = await make_gateway(**_env(backend))
    headers = {"Idempotency-Key": "upload-1"}
    first = await client.post("/api/v1/transcription", data=audio_form(wav), headers=headers)
    again = await client.post("/api/v1/transcription", data=audio_form(wav), headers=headers)
    assert (first.status, again.status) == (202, 202)
    task_id = (await first.json())["task_id"]
    assert (await again.json())["task_id"] == task_id
    assert await backend.names() == [keys.input_blob(task_id)]


async def test_large_text_input_goes_to_the_store(make_gateway, redis, backend):
    client = await make_gateway(**_env(backend))
    text = "é" * 50_000  # 100,000 bytes of UTF-8: over the 64 KiB Redis limit
    resp = await client.post("/api/v1/summarization", json={"text": text})
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    assert await backend.names() == [keys.input_blob(task_id)]
    assert await client.app[STORE].get_input(task_id) == text.encode()


async def _complete(redis, backend, task_id: str, output: bytes) -> None:
    await complete_task(
        redis, task_id, {"miner_uid": 1}, output, blobs=backend.store, binary_output=True
    )


@pytest.mark.parametrize("size", [1000, MAX_INLINE_OUTPUT, MAX_INLINE_OUTPUT + 1])
async def test_tts_output_from_the_store(make_gateway, redis, backend, size):
    client = await make_gateway(**_env(backend))
    resp = await client.post("/api/v1/tts", json={"text": "hello"})
    task_id = (await resp.json())["task_id"]
    output = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    await _complete(redis, backend, task_id, output)
    task = await client.app[STORE].get(task_id)
    # TTS audio is a blob whatever its size; Redis has only its name and size.
    assert task.output_blob is not None and task.output_size == size
    assert await redis.exists(keys.task_output(task_id)) == 0
    # The input was inline (small text): nothing but the output is in the store.
    assert await backend.names() == [task.output_blob]

    raw = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert raw.status == 200 and raw.headers["Content-Type"] == "audio/wav"
    assert raw.headers["Content-Length"] == str(size)
    assert await raw.read() == output

    body = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert body["result"]["output_url"] == f"/api/v1/tasks/{task_id}/output"
    expected = base64.b64encode(output).decode() if size <= MAX_INLINE_OUTPUT else None
    assert body["result"]["output_data"] == expected


async def test_no_redis_value_over_64_kib(make_gateway, redis, backend, wav):
    client = await make_gateway(**_env(backend))
    await client.post("/api/v1/transcription", data=audio_form(wav + b"\0" * 500_000))
    await client.post("/api/v1/summarization", json={"text": "word " * 40_000})
    tts = await (await client.post("/api/v1/tts", json={"text": "hi"})).json()
    await _complete(redis, backend, tts["task_id"], b"\0" * 300_000)
    # Every value of every key: strings, hash fields, list, set and zset members, and the
    # stream entries (the task event snapshots among them).
    size, where = await largest_redis_value(redis)
    assert size <= INLINE_MAX, where


async def test_store_away_gives_503_storage_unavailable(make_gateway, redis, tmp_path, wav):
    server = MotoServer().start()
    backend = await make_backend("s3", tmp_path, server)
    try:
        client = await make_gateway(**_env(backend))
        server.stop()
        resp = await client.post("/api/v1/transcription", data=audio_form(wav))
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert (await resp.json())["error"]["code"] == "storage_unavailable"
        await assert_nothing_stored(redis)
        health = await client.get("/api/v1/health")
        body = await health.json()
        assert health.status == 200 and body["status"] == "degraded"
        assert body["blob_store"] == {"backend": "s3", "status": "unreachable"}
        # Text small enough for Redis needs no blob store.
        assert (await client.post("/api/v1/tts", json={"text": "hi"})).status == 202

        server.start()
        resp = await client.post("/api/v1/transcription", data=audio_form(wav))
        assert resp.status == 202
        body = await (await client.get("/api/v1/health")).json()
        assert body["status"] == "healthy" and body["blob_store"]["status"] == "connected"
    finally:
        server.stop()
        await backend.store.close()


async def test_file_store_away_gives_503(make_gateway, redis, tmp_path, wav):
    client = await make_gateway(blob_store=str(tmp_path / "blobs"))
    (tmp_path / "blobs").rename(tmp_path / "unmounted")
    resp = await client.post("/api/v1/transcription", data=audio_form(wav))
    assert (resp.status, (await resp.json())["error"]["code"]) == (503, "storage_unavailable")
    await assert_nothing_stored(redis)
    (tmp_path / "unmounted").rename(tmp_path / "blobs")
    assert (await client.post("/api/v1/transcription", data=audio_form(wav))).status == 202
