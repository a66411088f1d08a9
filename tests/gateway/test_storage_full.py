"""The gateway over a full Redis (maxmemory reached, noeviction): submissions get 503
storage_full with Retry-After and store nothing, reads and replays keep working, health
shows the memory figures, and the CLI says why it cannot create a key."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.cli import main
from services.gateway.storage import BLOBS
from shared import keys
from tests.blobstores import blob_names
from tests.fullredis import fill, make_room, snapshot

from .conftest import audio_form

openapi_schema_validator = pytest.importorskip("openapi_schema_validator")

SUBMISSIONS = {
    "tts": {"json": {"text": "Hello, this is a test for TTS conversion.", "priority": "high"}},
    "summarization": {"json": {"text": "Long article text here...", "source_language": "en"}},
    "transcription": None,  # multipart, built per request (a form is sent once)
}


@pytest.fixture
async def gateway(make_gateway, full_server, small):
    """A gateway with the shipped defaults (rate limits included) on the small Redis."""
    return await make_gateway(redis_url=full_server.url)


async def submit(client, task_type: str, wav: bytes, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    body = SUBMISSIONS[task_type] or {"data": audio_form(wav, source_language="en")}
    return await client.post(f"/api/v1/{task_type}", headers=headers, **body)


def check_against_spec(spec: dict, path: str, status: int, body: object) -> None:
    response = spec["paths"][path]["get"]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    openapi_schema_validator.OAS30Validator(
        {**schema, "components": spec["components"]},
        format_checker=openapi_schema_validator.oas30_format_checker,
    ).validate(body)


@pytest.mark.parametrize("task_type", list(SUBMISSIONS))
@pytest.mark.parametrize("idempotency_key", [None, "retry-me-1"])
async def test_a_submission_to_a_full_redis_is_503_storage_full_and_stores_nothing(
    gateway, small, wav, task_type, idempotency_key
):
    assert (await submit(gateway, "tts", wav)).status == 202  # earlier data stays as it is
    await fill(small)
    before = await snapshot(small)
    blobs_before = await blob_names(gateway.app[BLOBS])

    resp = await submit(gateway, task_type, wav, idempotency_key)
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) > 0
    error = (await resp.json())["error"]
    assert error["code"] == "storage_full" and error["field"] is None
    assert "nothing was stored" in error["message"]
    # Not a key more or less: no task, no input, no queue entry, no sequence number, no
    # idempotency claim, and no rate-limit bucket (its write was refused too); nor an
    # input blob: the audio was committed before Redis refused the task.
    assert await snapshot(small) == before
    assert await blob_names(gateway.app[BLOBS]) == blobs_before

    # Once Redis has room, the same request (same Idempotency-Key) is a new task.
    await make_room(small)
    resp = await submit(gateway, task_type, wav, idempotency_key)
    assert resp.status == 202 and "Idempotent-Replayed" not in resp.headers
    assert await small.xlen(keys.stream("high")) + await small.xlen(keys.stream("normal")) == 2


async def test_reads_replays_and_health_keep_working_when_full(gateway, small, wav):
    first = await submit(gateway, "tts", wav, key="k-1")
    task_id = (await first.json())["task_id"]
    await fill(small)

    task = await gateway.get(f"/api/v1/tasks/{task_id}")
    assert task.status == 200 and (await task.json())["status"] == "pending"
    listing = await gateway.get("/api/v1/tasks")
    assert listing.status == 200 and (await listing.json())["count"] == 1
    replay = await submit(gateway, "tts", wav, key="k-1")
    assert replay.status == 202 and replay.headers["Idempotent-Replayed"] == "true"
    assert (await replay.json())["task_id"] == task_id
    assert (await gateway.get("/api/v1/stats")).status == 200

    resp = await gateway.get("/api/v1/health")
    assert resp.status == 200  # reads work; submissions answer 503 themselves
    health = await resp.json()
    memory = health["redis"]["memory"]
    assert memory["maxmemory_policy"] == "noeviction"
    assert memory["used_memory"] > memory["maxmemory"] > 0
    assert memory["ratio"] == round(memory["used_memory"] / memory["maxmemory"], 4) > 1
    spec = await (await gateway.get("/api/v1/openapi.json")).json()
    check_against_spec(spec, "/api/v1/health", 200, health)

    await make_room(small)
    memory = (await (await gateway.get("/api/v1/health")).json())["redis"]["memory"]
    assert 0 < memory["ratio"] < 1


async def test_health_without_a_memory_limit(client):
    memory = (await (await client.get("/api/v1/health")).json())["redis"]["memory"]
    assert memory["maxmemory"] == 0 and memory["ratio"] is None and memory["used_memory"] > 0


async def test_the_503_is_documented(client):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    for task_type in SUBMISSIONS:
        documented = spec["paths"][f"/api/v1/{task_type}"]["post"]["responses"]["503"]
        assert "storage_full" in documented["description"]
        assert "Retry-After" in documented["headers"]


async def test_creating_an_api_key_when_full_fails_clearly(
    monkeypatch, tmp_path, full_server, small, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", full_server.url)
    await fill(small)
    before = await snapshot(small)
    assert await _run_cli(["keys", "create", "--name", "ci bot"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "Redis is full (maxmemory reached)" in err
    assert "nothing was changed" in err
    assert await snapshot(small) == before
    assert await _run_cli(["keys", "list"]) == 0  # reading still works
    await make_room(small)
    assert await _run_cli(["keys", "create", "--name", "ci bot"]) == 0


async def _run_cli(argv: list[str]) -> int:
    # main() runs its own event loop (asyncio.run); give it a thread of its own.
    return await asyncio.to_thread(main, argv)
