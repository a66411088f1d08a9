"""Bad input: a 4xx JSON error naming code and field, and nothing stored in Redis."""

from __future__ import annotations

import json

import pytest
from aiohttp import FormData

from services.gateway.app import create_app

from .conftest import assert_nothing_stored, audio_form, gateway_settings

LONG_URL = "https://example.com/" + "a" * 2029  # 2049 characters


async def _assert_error(resp, status: int, code: str, field: str | None) -> dict:
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)
    assert body["error"]["message"]
    return body


TTS, SUMMARIZATION = "/api/v1/tts", "/api/v1/summarization"


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        (TTS, {"text": "hi", "voice": "x"}, "unknown_field", "voice"),
        (TTS, {"source_language": "en"}, "missing_field", "text"),
        (TTS, {"text": ""}, "blank_text", "text"),
        (TTS, {"text": " \n\t "}, "blank_text", "text"),
        (TTS, {"text": 5}, "invalid_text", "text"),
        (TTS, {"text": None}, "invalid_text", "text"),
        (TTS, {"text": "x" * 10_001}, "text_too_long", "text"),
        (SUMMARIZATION, {"text": "x" * 50_001}, "text_too_long", "text"),
        (TTS, {"text": "hi", "source_language": "xx"}, "invalid_language", "source_language"),
        (TTS, {"text": "hi", "source_language": "EN"}, "invalid_language", "source_language"),
        (SUMMARIZATION, {"text": "hi", "priority": "asap"}, "invalid_priority", "priority"),
        (TTS, {"text": "hi", "priority": 1}, "invalid_priority", "priority"),
        (TTS, {"text": "hi", "callback_url": "/relative"}, "invalid_callback_url", "callback_url"),
        (
            TTS,
            {"text": "hi", "callback_url": "ftp://a.com/x"},
            "invalid_callback_url",
            "callback_url",
        ),
        (TTS, {"text": "hi", "callback_url": "a.com/x"}, "invalid_callback_url", "callback_url"),
        (TTS, {"text": "hi", "callback_url": LONG_URL}, "invalid_callback_url", "callback_url"),
    ],
)
async def test_json_field_rules(client, redis, path, body, code, field):
    await _assert_error(await client.post(path, json=body), 400, code, field)
    await assert_nothing_stored(redis)


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        (b'{"text": ', "application/json", 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "invalid_json"),
        (b'["text"]', "application/json", 400, "invalid_json"),
        (b"", "application/json", 400, "invalid_json"),
        (b'{"text": "hi"}', "text/plain", 415, "unsupported_media_type"),
        (b"text=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_json_body_rules(client, redis, raw, content_type, status, code):
    resp = await client.post("/api/v1/tts", data=raw, headers={"Content-Type": content_type})
    await _assert_error(resp, status, code, None)
    await assert_nothing_stored(redis)


async def test_json_without_content_type_is_415(client, redis):
    resp = await client.post("/api/v1/summarization", data=json.dumps({"text": "hi"}).encode())
    await _assert_error(resp, 415, "unsupported_media_type", None)
    await assert_nothing_stored(redis)


async def test_json_body_over_max_json_bytes_is_413(make_gateway, redis):
    client = await make_gateway(max_json_bytes=1000)
    resp = await client.post("/api/v1/summarization", json={"text": "x" * 2000})
    await _assert_error(resp, 413, "payload_too_large", None)
    await assert_nothing_stored(redis)


async def test_configured_text_limit(make_gateway, redis):
    client = await make_gateway(tts_max_chars=5)
    assert (await client.post("/api/v1/tts", json={"text": "12345"})).status == 202
    await redis.flushall()
    resp = await client.post("/api/v1/tts", json={"text": "123456"})
    await _assert_error(resp, 400, "text_too_long", "text")
    await assert_nothing_stored(redis)


async def test_multipart_field_rules(client, redis, wav):
    cases = [
        (audio_form(b""), "empty_file", "audio_file"),
        (audio_form(b"just some text, not audio at all"), "not_audio", "audio_file"),
        (audio_form(b"RIFF\x00\x00\x00\x00AVI LIST"), "not_audio", "audio_file"),
        (audio_form(wav, source_language="xx"), "invalid_language", "source_language"),
        (audio_form(wav, priority="whenever"), "invalid_priority", "priority"),
        (audio_form(wav, callback_url="mailto:a@b.c"), "invalid_callback_url", "callback_url"),
        (audio_form(wav, speaker="x"), "unknown_field", "speaker"),
        (audio_form(wav, source_language="en", priority="low", callback_url=LONG_URL),
         "invalid_callback_url", "callback_url"),
    ]  # fmt: skip
    no_file = FormData(default_to_multipart=True)
    no_file.add_field("source_language", "en")
    no_file.add_field("priority", "normal")
    cases.append((no_file, "missing_field", "audio_file"))
    twice = audio_form(wav)
    twice.add_field("audio_file", wav, filename="again.wav")
    cases.append((twice, "duplicate_field", "audio_file"))
    for form, code, field in cases:
        resp = await client.post("/api/v1/transcription", data=form)
        await _assert_error(resp, 400, code, field)
    await assert_nothing_stored(redis)


async def test_transcription_needs_multipart(client, redis):
    resp = await client.post("/api/v1/transcription", json={"audio_file": "UklGRg=="})
    await _assert_error(resp, 415, "unsupported_media_type", None)
    resp = await client.post(
        "/api/v1/transcription", data=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    await _assert_error(resp, 400, "invalid_multipart", None)
    await assert_nothing_stored(redis)


@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\n126884114840603688960--b--\r\n",  # a part head that is no header (schemathesis)
        b"--b\r\nContent-Disposition form-data\r\n\r\nx\r\n--b--\r\n",
        b"--b\r\n: no-name\r\n\r\nx\r\n--b--\r\n",
    ],
)
async def test_malformed_part_heads_are_400(client, redis, body):
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    resp = await client.post("/api/v1/transcription", data=body, headers=headers)
    await _assert_error(resp, 400, "invalid_multipart", None)
    await assert_nothing_stored(redis)


async def test_text_endpoints_refuse_multipart(client, redis, wav):
    resp = await client.post("/api/v1/tts", data=audio_form(wav))
    await _assert_error(resp, 415, "unsupported_media_type", None)
    await assert_nothing_stored(redis)


async def test_unknown_route_and_method_are_json(client):
    resp = await client.get("/api/v1/nothing-here")
    await _assert_error(resp, 404, "not_found", None)
    resp = await client.get("/api/v1/tts")
    await _assert_error(resp, 405, "method_not_allowed", None)
    assert resp.headers["Allow"] == "POST"
    resp = await client.delete("/api/v1/tasks")
    await _assert_error(resp, 405, "method_not_allowed", None)


async def test_request_id_is_echoed_or_generated(client):
    resp = await client.get("/api/v1/nothing", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.post("/api/v1/tts", json={})
    assert len(resp.headers["X-Request-ID"]) == 32


async def test_unexpected_handler_error_is_a_json_500(aiohttp_client, redis_url):
    async def broken(request):
        raise RuntimeError("boom")

    app = create_app(gateway_settings(redis_url))
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    await _assert_error(await client.get("/broken"), 500, "internal_error", None)
