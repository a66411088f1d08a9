"""Reading tasks back: status, result, raw output, listing with cursors, and expiry."""

from __future__ import annotations

import base64

import pytest

from shared import keys
from shared.store import TaskStore
from shared.tasks import Status

from .conftest import SEED_STATUS_KEYS, audio_form, complete_task

SEED_RESULT = {
    "model_used": "openai/whisper-tiny",
    "processing_time": 1.23,
    "accuracy_score": 0.95,
    "speed_score": 0.89,
    "miner_uid": 48,
}


async def _submit(client, path: str = "/api/v1/tts", **body) -> str:
    body.setdefault("text", "hello")
    resp = await client.post(path, json=body)
    assert resp.status == 202
    return (await resp.json())["task_id"]


async def _complete(redis, task_id: str, output: bytes, ttl: int = 3600) -> None:
    await complete_task(redis, task_id, SEED_RESULT, output, ttl=ttl)


async def test_pending_task(client):
    task_id = await _submit(client, source_language="de", priority="urgent")
    resp = await client.get(f"/api/v1/tasks/{task_id}")
    assert resp.status == 200
    body = await resp.json()
    assert SEED_STATUS_KEYS <= set(body)
    assert (body["task_id"], body["status"], body["task_type"]) == (task_id, "pending", "tts")
    assert (body["source_language"], body["priority"]) == ("de", "urgent")
    assert body["result"] is None and body["completed_at"] is None
    assert body["created_at"].endswith("Z")


async def test_completed_transcription_has_the_seed_result(client, redis, wav):
    resp = await client.post("/api/v1/transcription", data=audio_form(wav))
    task_id = (await resp.json())["task_id"]
    await _complete(redis, task_id, "hello wörld".encode())
    body = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert SEED_STATUS_KEYS <= set(body) and body["status"] == "completed"
    result = body["result"]
    assert base64.b64decode(result["output_data"]) == "hello wörld".encode()
    assert result["output_text"] == "hello wörld"
    assert {k: result[k] for k in SEED_RESULT} == SEED_RESULT
    assert (body["processing_time"], body["accuracy_score"], body["speed_score"]) == (
        1.23,
        0.95,
        0.89,
    )
    assert body["completed_at"] is not None and body["attempts"] == 1

    resp = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await resp.text() == "hello wörld"


async def test_tts_output_is_wav(client, redis, wav):
    task_id = await _submit(client)
    await _complete(redis, task_id, wav)
    body = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert base64.b64decode(body["result"]["output_data"]) == wav
    assert "output_text" not in body["result"]
    resp = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert resp.headers["Content-Type"] == "audio/wav"
    assert await resp.read() == wav


async def test_failed_task_shows_its_error(client, redis):
    task_id = await _submit(client, path="/api/v1/summarization")
    store = TaskStore(redis, 3600)
    await store.transition(task_id, Status.FAILED, expect=[Status.PENDING], fields={"error": "x"})
    body = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert (body["status"], body["error"], body["result"]) == ("failed", "x", None)
    resp = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "output_not_ready"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/00000000-0000-4000-8000-000000000000",
        "/api/v1/tasks/not-a-uuid",
        "/api/v1/tasks/00000000-0000-4000-8000-000000000000/output",
    ],
)
async def test_unknown_task_is_404(client, path):
    resp = await client.get(path)
    assert resp.status == 404
    assert (await resp.json())["error"] == {
        "code": "task_not_found",
        "message": f"no task {path.split('/')[4]!r}",
        "field": "task_id",
    }


async def test_output_of_a_pending_task_is_409(client):
    task_id = await _submit(client)
    resp = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "output_not_ready"


async def test_finished_tasks_expire_after_result_ttl(client, redis):
    task_id = await _submit(client)
    await _complete(redis, task_id, b"wav", ttl=120)
    task_keys = [keys.task(task_id), keys.task_output(task_id)]
    for key in task_keys:
        assert 0 < await redis.ttl(key) <= 120
    assert await redis.exists(keys.task_input(task_id)) == 0  # INPUT_RETENTION=0
    # Move the expiry into the past instead of waiting two minutes: Redis drops them now.
    for key in task_keys:
        await redis.pexpireat(key, 1)
    assert await redis.exists(*task_keys) == 0
    assert (await client.get(f"/api/v1/tasks/{task_id}")).status == 404
    assert (await client.get(f"/api/v1/tasks/{task_id}/output")).status == 404
    listing = await (await client.get("/api/v1/tasks?status=completed")).json()
    assert listing["tasks"] == []
    # The listing also dropped the stale entry from the caller's own index.
    owner_index = keys.owner_index("ip:127.0.0.1", Status.COMPLETED)
    assert await redis.zscore(owner_index, task_id) is None


async def test_output_gone_while_task_remains_is_404(client, redis):
    task_id = await _submit(client)
    await _complete(redis, task_id, b"wav")
    await redis.delete(keys.task_output(task_id))
    resp = await client.get(f"/api/v1/tasks/{task_id}/output")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "output_not_found"


async def test_listing_newest_first_with_cursor(client):
    ids = [await _submit(client, text=f"t{i}") for i in range(5)]
    page = await (await client.get("/api/v1/tasks?limit=2")).json()
    assert [t["task_id"] for t in page["tasks"]] == [ids[4], ids[3]]
    assert page["count"] == 2 and page["next_cursor"] is not None
    page = await (await client.get(f"/api/v1/tasks?limit=2&cursor={page['next_cursor']}")).json()
    assert [t["task_id"] for t in page["tasks"]] == [ids[2], ids[1]]
    page = await (await client.get(f"/api/v1/tasks?limit=2&cursor={page['next_cursor']}")).json()
    assert [t["task_id"] for t in page["tasks"]] == [ids[0]]
    assert page["next_cursor"] is None


async def test_listing_default_limit_and_maximum(client):
    ids = [await _submit(client, text=f"t{i}") for i in range(12)]
    page = await (await client.get("/api/v1/tasks")).json()
    assert page["count"] == 10 and page["tasks"][0]["task_id"] == ids[-1]
    page = await (await client.get("/api/v1/tasks?limit=100")).json()
    assert page["count"] == 12 and page["next_cursor"] is None


async def test_listing_by_status_follows_status_changes(client, redis, wav):
    ids = [await _submit(client, text=f"t{i}") for i in range(3)]
    await _complete(redis, ids[1], wav)
    store = TaskStore(redis, 3600)
    await store.transition(ids[2], Status.PROCESSING, expect=[Status.PENDING])

    async def listed(status: str) -> list[str]:
        page = await (await client.get(f"/api/v1/tasks?status={status}&limit=100")).json()
        assert all(t["status"] == status for t in page["tasks"])
        return [t["task_id"] for t in page["tasks"]]

    assert await listed("pending") == [ids[0]]
    assert await listed("processing") == [ids[2]]
    assert await listed("completed") == [ids[1]]
    assert await listed("failed") == []
    # Listings leave the (possibly large) output out: fetch the task for it.
    page = await (await client.get("/api/v1/tasks?status=completed")).json()
    assert page["tasks"][0]["result"]["output_data"] is None
    assert page["tasks"][0]["result"]["miner_uid"] == 48


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("limit=0", "invalid_limit", "limit"),
        ("limit=101", "invalid_limit", "limit"),
        ("limit=ten", "invalid_limit", "limit"),
        ("status=done", "invalid_status", "status"),
        ("cursor=-1", "invalid_cursor", "cursor"),
        ("cursor=abc", "invalid_cursor", "cursor"),
        ("page=2", "unknown_field", "page"),
    ],
)
async def test_listing_rejects_bad_parameters(client, query, code, field):
    resp = await client.get(f"/api/v1/tasks?{query}")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == (code, field)
