"""Accepted submissions: the 202 answer, what is stored, and which stream it lands in."""

from __future__ import annotations

import pytest

from services.gateway.state import STORE
from shared import keys
from shared.store import TaskStore
from shared.taskdata import INLINE_MAX
from shared.tasks import PRIORITY_ORDER, Status, Task

from .conftest import SEED_SUBMISSION_KEYS, audio_form


async def _stored(redis, task_id: str) -> Task:
    return Task.from_hash(await redis.hgetall(keys.task(task_id)))


async def test_tts_is_stored_indexed_and_queued(client, redis):
    resp = await client.post(
        "/api/v1/tts",
        json={"text": "Héllo wörld", "source_language": "fr", "priority": "high"},
    )
    assert resp.status == 202
    body = await resp.json()
    assert set(body) == SEED_SUBMISSION_KEYS
    assert body["status"] == "pending" and body["task_type"] == "tts"
    assert body["message"] == "TTS task submitted successfully"
    assert body["source_language"] == "fr" and body["estimated_completion_time"] == 45
    task_id = body["task_id"]
    assert resp.headers["Location"] == f"/api/v1/tasks/{task_id}"

    task = await _stored(redis, task_id)
    assert (task.task_type, task.language, task.priority.value) == ("tts", "fr", "high")
    assert (
        task.status is Status.PENDING and task.owner == "ip:127.0.0.1" and task.callback_url is None
    )
    assert await redis.get(keys.task_input(task_id)) == "Héllo wörld".encode()
    assert task.input_size == len("Héllo wörld".encode())
    assert await redis.zscore(keys.status_index(Status.PENDING), task_id) == task.seq
    assert await redis.zscore(keys.ALL_TASKS, task_id) == task.seq
    entries = await redis.xrange(keys.stream("high"))
    assert [fields for _, fields in entries] == [{b"task_id": task_id.encode()}]
    # A pending task does not expire: only finished ones get RESULT_TTL.
    assert await redis.ttl(keys.task(task_id)) == -1


async def test_transcription_stores_the_audio_bytes(client, redis, wav):
    form = audio_form(wav, source_language="en", priority="normal")
    resp = await client.post("/api/v1/transcription", data=form)
    assert resp.status == 202
    body = await resp.json()
    assert set(body) == SEED_SUBMISSION_KEYS
    assert body["message"] == "Transcription task submitted successfully"
    assert body["estimated_completion_time"] == 60 and body["task_type"] == "transcription"
    task = await _stored(redis, body["task_id"])
    assert task.input_size == len(wav)
    # Audio goes to the blob store, never into Redis.
    assert task.input_blob == keys.input_blob(task.task_id)
    assert await redis.exists(keys.task_input(task.task_id)) == 0
    assert await client.app[STORE].get_input(task.task_id) == wav


async def test_summarization_of_the_seed_example_with_callback(client, redis):
    text = "Long article text..."
    assert len(text) == 20
    resp = await client.post(
        "/api/v1/summarization",
        json={"text": text, "callback_url": "http://127.0.0.1:9000/hook?x=1"},
    )
    assert resp.status == 202
    body = await resp.json()
    assert body["message"] == "Summarization task submitted successfully"
    assert body["estimated_completion_time"] == 30
    task = await _stored(redis, body["task_id"])
    assert task.callback_url == "http://127.0.0.1:9000/hook?x=1"
    # Defaults: source_language en, priority normal.
    assert (task.language, task.priority.value) == ("en", "normal")
    assert await redis.xlen(keys.stream("normal")) == 1


@pytest.mark.parametrize("priority", [p.value for p in PRIORITY_ORDER])
async def test_each_priority_has_its_own_stream(client, redis, priority):
    resp = await client.post("/api/v1/tts", json={"text": "hi", "priority": priority})
    task_id = (await resp.json())["task_id"]
    sizes = await TaskStore(redis, 60).queue_sizes()
    assert sizes == {p.value: int(p.value == priority) for p in PRIORITY_ORDER}
    [(_, fields)] = await redis.xrange(keys.stream(priority))
    assert fields == {b"task_id": task_id.encode()}


@pytest.mark.parametrize(
    ("path", "limit"), [("/api/v1/tts", 10_000), ("/api/v1/summarization", 50_000)]
)
async def test_text_at_the_limit_is_accepted(client, redis, path, limit):
    resp = await client.post(path, json={"text": "é" * limit})
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    assert await client.app[STORE].get_input(task_id) == ("é" * limit).encode()
    # Over 64 KiB it is a blob, not a Redis value.
    in_redis = await redis.get(keys.task_input(task_id))
    assert in_redis is None if limit * 2 > INLINE_MAX else in_redis == ("é" * limit).encode()


async def test_callback_url_of_2048_characters_is_accepted(client):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    resp = await client.post("/api/v1/tts", json={"text": "hi", "callback_url": url})
    assert resp.status == 202


async def test_every_whisper_language_and_configured_lists(make_gateway, redis):
    client = await make_gateway(allowed_languages="en, sw ,yue", default_language="sw")
    resp = await client.post("/api/v1/tts", json={"text": "hi"})
    assert (await resp.json())["source_language"] == "sw"
    resp = await client.post("/api/v1/tts", json={"text": "hi", "source_language": "yue"})
    assert resp.status == 202
    resp = await client.post("/api/v1/tts", json={"text": "hi", "source_language": "fr"})
    assert resp.status == 400


async def test_tasks_are_numbered_in_submission_order(client, redis):
    ids = []
    for text in ("one", "two", "three"):
        resp = await client.post("/api/v1/tts", json={"text": text})
        ids.append((await resp.json())["task_id"])
    seqs = [(await _stored(redis, i)).seq for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
