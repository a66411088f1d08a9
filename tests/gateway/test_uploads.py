"""The audio size limit: 413 detected while the body streams in, nothing stored."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.gateway.settings import MIB

from .conftest import assert_nothing_stored, audio_form

BOUNDARY = "gatewaytestboundary"


def _file_part_head(name: str = "audio_file") -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()


async def _raw_post(client, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    """Send a request whose body is never finished, then read the answer.

    The gateway can only answer if it judged the upload from the bytes streamed so far.
    """
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"POST /api/v1/transcription HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body
        )
        await writer.drain()
        status_line = await reader.readline()
        response_headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            key, _, value = line.decode().partition(":")
            response_headers[key.strip().lower()] = value.strip()
        payload = await reader.readexactly(int(response_headers["content-length"]))
        return int(status_line.split()[1]), json.loads(payload)
    finally:
        writer.close()


async def test_default_limit_is_50_mib(client, redis, wav):
    over = wav + b"\0" * (50 * MIB + 1 - len(wav))
    resp = await client.post("/api/v1/transcription", data=audio_form(over))
    assert resp.status == 413
    assert (await resp.json())["error"] == {
        "code": "file_too_large",
        "message": f"the file is larger than {50 * MIB} bytes",
        "field": "audio_file",
    }
    await assert_nothing_stored(redis)


async def test_a_file_exactly_at_the_limit_is_accepted(make_gateway, redis, wav):
    client = await make_gateway(max_upload_bytes=len(wav))
    assert (await client.post("/api/v1/transcription", data=audio_form(wav))).status == 202
    await redis.flushall()
    resp = await client.post("/api/v1/transcription", data=audio_form(wav + b"\0"))
    assert resp.status == 413
    await assert_nothing_stored(redis)


@pytest.mark.timeout(30)
async def test_413_arrives_before_the_body_is_complete(make_gateway, redis, wav):
    client = await make_gateway(max_upload_bytes=4096)
    # Content-Length promises 1 MiB (not refused up front) but only half is ever sent:
    # enough for the parser to hand over a few 64 KiB chunks, which pass the limit.
    sent = _file_part_head() + wav[:44] + b"\0" * (MIB // 2)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(MIB),
    }
    status, body = await _raw_post(client, headers, sent)
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        413,
        "file_too_large",
        "audio_file",
    )
    await assert_nothing_stored(redis)


@pytest.mark.timeout(30)
async def test_413_while_streaming_a_chunked_body(make_gateway, redis, wav):
    client = await make_gateway(max_upload_bytes=4096)
    data = _file_part_head() + wav[:44] + b"\0" * (MIB // 2)
    chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n"  # no terminating 0-chunk
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Transfer-Encoding": "chunked",
    }
    status, body = await _raw_post(client, headers, chunk)
    assert (status, body["error"]["code"]) == (413, "file_too_large")
    await assert_nothing_stored(redis)


@pytest.mark.timeout(30)
async def test_declared_length_far_over_the_limit_is_refused_unread(make_gateway, redis):
    client = await make_gateway(max_upload_bytes=4096)
    headers = {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(4096 + 2 * MIB),
    }
    status, body = await _raw_post(client, headers, b"")
    assert (status, body["error"]["code"]) == (413, "file_too_large")
    await assert_nothing_stored(redis)


async def test_oversized_text_field_in_a_form(client, redis, wav):
    resp = await client.post(
        "/api/v1/transcription", data=audio_form(wav, callback_url="h" * 20_000)
    )
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "field_too_large"
    await assert_nothing_stored(redis)
