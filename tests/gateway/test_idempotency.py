"""Idempotency-Key: one task per key and request, 422 for reuse, scoped per identity."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from services.gateway.apikeys import ApiKeys
from shared import keys

from .conftest import assert_nothing_stored, audio_form

TTS = "/api/v1/tts"


def idem(key: str, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


async def test_a_retry_gets_the_first_answer_and_no_second_task(client, redis):
    first = await client.post(TTS, json={"text": "hi", "priority": "high"}, headers=idem("k-1"))
    assert first.status == 202 and "Idempotent-Replayed" not in first.headers
    body = await first.json()
    # Defaults filled in count as the same request.
    again = await client.post(
        TTS, json={"priority": "high", "text": "hi", "source_language": "en"}, headers=idem("k-1")
    )
    assert again.status == 202
    assert await again.json() == body
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await redis.zcard(keys.ALL_TASKS) == 1 and await redis.xlen(keys.stream("high")) == 1
    stored = keys.idempotency("ip:127.0.0.1", hashlib.sha256(b"k-1").hexdigest())
    assert 86_000 < await redis.ttl(stored) <= 86_400


@pytest.mark.parametrize(
    ("path", "second"),
    [
        (TTS, {"text": "hi!"}),
        (TTS, {"text": "hi", "priority": "low"}),
        ("/api/v1/summarization", {"text": "hi"}),
    ],
)
async def test_the_same_key_for_another_request_is_422(client, redis, path, second):
    assert (await client.post(TTS, json={"text": "hi"}, headers=idem("k-2"))).status == 202
    resp = await client.post(path, json=second, headers=idem("k-2"))
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == ("idempotency_key_reused", "Idempotency-Key")
    assert await redis.zcard(keys.ALL_TASKS) == 1


async def test_concurrent_duplicates_create_one_task(client, redis):
    answers = await asyncio.gather(
        *(client.post(TTS, json={"text": "race"}, headers=idem("k-3")) for _ in range(25))
    )
    assert [a.status for a in answers] == [202] * 25
    ids = {(await a.json())["task_id"] for a in answers}
    assert len(ids) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert await redis.zcard(keys.ALL_TASKS) == 1 and await redis.xlen(keys.stream("normal")) == 1


async def test_uploads_are_compared_by_content(client, redis, wav):
    url = "/api/v1/transcription"
    first = await client.post(url, data=audio_form(wav, "a.wav"), headers=idem("k-4"))
    renamed = await client.post(url, data=audio_form(wav, "b.wav"), headers=idem("k-4"))
    assert (await first.json())["task_id"] == (await renamed.json())["task_id"]
    other = await client.post(url, data=audio_form(wav + b"\0"), headers=idem("k-4"))
    assert other.status == 422
    assert await redis.zcard(keys.ALL_TASKS) == 1


async def test_keys_are_scoped_per_identity(make_gateway, redis):
    client = await make_gateway(trusted_proxies="127.0.0.1")
    _, api_key = await ApiKeys(redis).create("scoped")
    callers = [
        {"X-Forwarded-For": "1.1.1.1"},
        {"X-Forwarded-For": "2.2.2.2"},
        {"X-API-Key": api_key},
    ]
    ids = set()
    for caller in callers:
        resp = await client.post(TTS, json={"text": "shared"}, headers=idem("same", **caller))
        assert resp.status == 202 and "Idempotent-Replayed" not in resp.headers
        ids.add((await resp.json())["task_id"])
    assert len(ids) == 3 and await redis.zcard(keys.ALL_TASKS) == 3


@pytest.mark.parametrize("value", ["", "with space", "x" * 256, "é"])
async def test_a_malformed_key_is_400_and_stores_nothing(client, redis, value):
    headers = {"Idempotency-Key": value.encode().decode("latin-1")}
    resp = await client.post(TTS, json={"text": "hi"}, headers=headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == ("invalid_idempotency_key", "Idempotency-Key")
    await assert_nothing_stored(redis)


async def test_an_invalid_request_claims_nothing(client, redis):
    assert (await client.post(TTS, json={"text": ""}, headers=idem("k-5"))).status == 400
    await assert_nothing_stored(redis)
    resp = await client.post(TTS, json={"text": "now valid"}, headers=idem("k-5"))
    assert resp.status == 202 and "Idempotent-Replayed" not in resp.headers
