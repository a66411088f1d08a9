"""Cancelling a task the validator is working on: a real gateway app, a real validator, a
slow devnet miner and a webhook receiver, all on loopback against real Redis.

TASK_TIMEOUT is raised to 60 s (the test settings use 2 s) so that the slow miner's request
is still in flight, not timed out, when the task is cancelled."""

from __future__ import annotations

import json

from aiohttp import web

from services.gateway.app import create_app as create_gateway
from shared import keys
from shared.store import TaskStore
from shared.tasks import Priority, Status
from tests.gateway.conftest import gateway_settings
from tests.validator.conftest import (
    ARTICLE,
    attempts,
    components,
    eventually,
    running,
    validator_settings,
    write_miners,
)

MINER_LATENCY = 30.0  # seconds the miner sleeps before answering: longer than the test


async def test_cancelling_a_processing_task_abandons_its_miner_requests(
    redis, redis_url, tmp_path, start_miner, validator_wallet, aiohttp_client, aiohttp_server
):
    hooks: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(json.loads(await request.read()))
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    hook_url = str((await aiohttp_server(receiver, host="127.0.0.1")).make_url("/hook"))

    miner = await start_miner(0, "accurate", latency=MINER_LATENCY)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [miner]), task_timeout=60
    )
    gateway = await aiohttp_client(
        create_gateway(gateway_settings(redis_url, blob_store=str(tmp_path / "blobs")))
    )
    async with running(settings, validator_wallet) as app:
        resp = await gateway.post(
            "/api/v1/summarization",
            json={"text": ARTICLE, "callback_url": hook_url, "priority": Priority.HIGH.value},
        )
        assert resp.status == 202
        task_id = (await resp.json())["task_id"]
        processor = components(app).processor
        # The miner has the request and sleeps on it: the task is processing.
        await eventually(lambda: _async(processor.in_flight[miner.hotkey] == 1))
        assert miner.activity.active == 1

        resp = await gateway.delete(f"/api/v1/tasks/{task_id}")
        assert resp.status == 200 and (await resp.json())["status"] == "cancelled"

        metrics = components(app).metrics
        await eventually(lambda: _async(_finished(metrics, "cancelled") == 1))
        # The attempt was abandoned, the miner's slot given back, the entry acknowledged.
        assert processor.in_flight[miner.hotkey] == 0
        await eventually(lambda: _xlen_zero(redis))
        await eventually(lambda: _async(len(hooks) == 1))

    [event] = hooks
    assert event["type"] == "task.cancelled" and event["data"]["task_id"] == task_id
    assert event["data"]["status"] == "cancelled"
    store = TaskStore(redis, 3600)
    task = await store.get(task_id)
    assert task.status is Status.CANCELLED and task.result is None and task.error is None
    assert await store.get_output(task_id) is None
    assert await attempts(redis, task_id) == []  # no attempt record written after the cancel
    assert _finished(metrics, "completed") == 0


def _finished(metrics, outcome: str) -> float:
    return metrics.value("validator_tasks_total", task_type="summarization", outcome=outcome)


async def _async(value: bool) -> bool:
    return value


async def _xlen_zero(redis) -> bool:
    return await redis.xlen(keys.stream(Priority.HIGH)) == 0
