"""Live task events (SSE), ?wait=, and cancellation, against real Redis over loopback.

The status changes are made through shared.store.TaskStore, as the validator makes them,
so these tests need no validator (tests/validator/test_cancellation.py runs one)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from services.gateway.apikeys import ApiKeys
from services.gateway.state import EVENT_HUB
from shared import keys
from shared.store import TaskStore
from shared.tasks import Status

from .conftest import complete_task

RESULT = {"model_used": "devnet", "processing_time": 0.5, "accuracy_score": 1.0}


async def read_sse(resp: ClientResponse) -> list[dict[str, Any]]:
    """Every event of a stream until the server ends it: {id, event, data}; comments are
    returned as {"comment": text}."""
    events, current = [], {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if current:
                events.append(current)
            current = {}
        elif line.startswith(":"):
            events.append({"comment": line[1:].strip()})
        else:
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    return events


async def submit(client: TestClient, **body: Any) -> str:
    resp = await client.post("/api/v1/summarization", json={"text": "word " * 30, **body})
    assert resp.status == 202, await resp.text()
    return (await resp.json())["task_id"]


async def watched(client: TestClient, count: int = 1) -> None:
    """Until ``count`` tasks are watched in the client's gateway process."""
    for _ in range(1000):
        if client.app[EVENT_HUB].watched >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} watched tasks expected")


async def finish(redis, task_id: str) -> None:
    await complete_task(redis, task_id, RESULT, b"a summary")


async def test_events_from_the_current_state_to_the_final_one(client, redis):
    task_id = await submit(client)
    resp = await client.get(f"/api/v1/tasks/{task_id}/events")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reading = asyncio.ensure_future(read_sse(resp))
    await watched(client)
    await finish(redis, task_id)
    events = [e for e in await asyncio.wait_for(reading, 10) if "comment" not in e]
    assert [(e["id"], e["event"]) for e in events] == [
        ("1", "pending"),
        ("2", "processing"),
        ("3", "completed"),
    ]
    final = events[-1]["data"]
    status = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert final == status  # the same JSON as GET /api/v1/tasks/{id}
    assert final["result"]["output_text"] == "a summary"
    assert [e["data"]["status"] for e in events] == ["pending", "processing", "completed"]


async def test_reconnecting_with_last_event_id_resumes_after_it(client, redis):
    task_id = await submit(client)
    await finish(redis, task_id)
    url = f"/api/v1/tasks/{task_id}/events"
    fresh = await read_sse(await client.get(url))
    assert [e["event"] for e in fresh] == ["completed"]  # starts with the current state
    resumed = await read_sse(await client.get(url, headers={"Last-Event-ID": "1"}))
    assert [(e["id"], e["event"]) for e in resumed] == [("2", "processing"), ("3", "completed")]
    after_end = await client.get(url, headers={"Last-Event-ID": "3"})
    assert after_end.status == 200 and await read_sse(after_end) == []
    bad = await client.get(url, headers={"Last-Event-ID": "three"})
    assert bad.status == 400
    assert (await bad.json())["error"]["code"] == "invalid_last_event_id"


async def test_events_through_another_gateway_on_the_same_redis(client, make_gateway, redis):
    """Submitted through one gateway, watched through another: the stream is in Redis."""
    other = await make_gateway()
    task_id = await submit(client)
    resp = await other.get(f"/api/v1/tasks/{task_id}/events")
    assert resp.status == 200
    reading = asyncio.ensure_future(read_sse(resp))
    await watched(other)
    cancelled = await client.delete(f"/api/v1/tasks/{task_id}")
    assert cancelled.status == 200
    events = await asyncio.wait_for(reading, 10)
    assert [e["event"] for e in events] == ["pending", "cancelled"]


async def test_no_event_is_lost_when_the_pubsub_connection_drops(client, redis):
    """Pub/sub is at-most-once: a publication sent while the hub reconnects is lost. The
    stream is the record, and the hub wakes its watchers to re-read it after reconnecting."""
    task_id = await submit(client)
    resp = await client.get(f"/api/v1/tasks/{task_id}/events")
    reading = asyncio.ensure_future(read_sse(resp))
    await watched(client)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    await finish(redis, task_id)
    events = [e for e in await asyncio.wait_for(reading, 10) if "comment" not in e]
    assert [e["event"] for e in events] == ["pending", "processing", "completed"]


async def test_another_identity_gets_404(client, redis):
    task_id = await submit(client)
    _, key = await ApiKeys(redis).create("someone else")
    headers = {"Authorization": f"Bearer {key}"}
    for method, path in (
        ("GET", f"/api/v1/tasks/{task_id}/events"),
        ("DELETE", f"/api/v1/tasks/{task_id}"),
        ("GET", f"/api/v1/tasks/{task_id}?wait=1"),
    ):
        resp = await client.request(method, path, headers=headers)
        assert resp.status == 404, (method, path)
        assert (await resp.json())["error"]["code"] == "task_not_found"
    assert (await TaskStore(redis, 3600).get(task_id)).status is Status.PENDING


async def test_wait_answers_when_the_task_ends(client, redis):
    task_id = await submit(client)
    waiting = asyncio.ensure_future(client.get(f"/api/v1/tasks/{task_id}?wait=60"))
    await watched(client)
    await finish(redis, task_id)
    resp = await asyncio.wait_for(waiting, 10)
    assert resp.status == 200
    assert (await resp.json())["status"] == "completed"


async def test_wait_answers_the_current_state_after_n_seconds(client):
    task_id = await submit(client)
    resp = await client.get(f"/api/v1/tasks/{task_id}?wait=0.2")
    assert resp.status == 200 and (await resp.json())["status"] == "pending"


async def test_a_bad_wait_is_a_400(client, redis):
    task_id = await submit(client)
    for value in ("61", "-1", "soon", "nan", ""):
        resp = await client.get(f"/api/v1/tasks/{task_id}?wait={value}")
        assert resp.status == 400, value
        assert (await resp.json())["error"]["code"] == "invalid_wait"


async def test_cancel_a_pending_task_with_no_validator_running(client, redis):
    task_id = await submit(client, callback_url="https://example.com/hook")
    resp = await client.delete(f"/api/v1/tasks/{task_id}")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "cancelled" and body["completed_at"] is not None
    assert (await (await client.get(f"/api/v1/tasks/{task_id}")).json())["status"] == "cancelled"

    again = await client.delete(f"/api/v1/tasks/{task_id}")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "task_final"

    listing = await (await client.get("/api/v1/tasks?status=cancelled")).json()
    assert [t["task_id"] for t in listing["tasks"]] == [task_id]
    stats = await (await client.get("/api/v1/stats")).json()
    assert stats["tasks"]["cancelled"] == 1 and stats["tasks"]["pending"] == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_tasks_cancelled_total{task_type="summarization",was="pending"} 1.0' in metrics
    assert 'gateway_tasks{status="cancelled"} 1.0' in metrics

    # The webhook is queued by the cancelling script itself, for the validators to send.
    hook = await redis.hgetall(keys.webhook(f"msg_{task_id}_cancelled"))
    assert json.loads(hook[b"body"])["type"] == "task.cancelled"
    assert await redis.zscore(keys.WEBHOOK_QUEUE, f"msg_{task_id}_cancelled") is not None
    # Its input is released like any final task's; its data expires with RESULT_TTL.
    assert not await redis.exists(keys.task_input(task_id))
    assert await redis.ttl(keys.task_events(task_id)) > 0


async def test_a_finished_task_cannot_be_cancelled(client, redis):
    task_id = await submit(client)
    await finish(redis, task_id)
    resp = await client.delete(f"/api/v1/tasks/{task_id}")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "task_final"
    assert (await TaskStore(redis, 3600).get(task_id)).status is Status.COMPLETED


async def test_a_cancelled_task_is_never_completed(client, redis):
    """The transition scripts refuse to move a final status: a validator finishing late
    loses, and nothing of its answer is stored."""
    task_id = await submit(client)
    store = TaskStore(redis, 3600)
    assert await store.transition(task_id, Status.PROCESSING, expect=[Status.PENDING])
    assert (await client.delete(f"/api/v1/tasks/{task_id}")).status == 200
    assert not await store.transition(
        task_id,
        Status.COMPLETED,
        expect=[Status.PENDING, Status.PROCESSING],
        fields={"result": json.dumps(RESULT)},
        output=b"late",
    )
    task = await store.get(task_id)
    assert task.status is Status.CANCELLED and task.result is None
    assert await store.get_output(task_id) is None
