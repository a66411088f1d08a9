"""Events across gateway replicas: two real ``python -m services.gateway`` processes on one
redis-server; a task submitted and cancelled through one is watched through the other."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from devnet.redis_server import free_port

from .conftest import gateway_process
from .test_events import read_sse


async def test_submit_through_one_replica_watch_through_another(redis, redis_url, tmp_path):
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        for port in ports:
            env = {"REDIS_URL": redis_url, "PORT": str(port), "ENVIRONMENT": "test"}
            _, status = stack.enter_context(gateway_process(env, cwd=tmp_path))
            assert status == 200
        one, other = (f"http://127.0.0.1:{p}" for p in ports)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{one}/api/v1/tts", json={"text": "hello"}) as resp:
                assert resp.status == 202
                task_id = (await resp.json())["task_id"]
            events_url = f"{other}/api/v1/tasks/{task_id}/events"
            async with http.get(events_url) as stream:
                assert stream.status == 200
                # The first event (the current state) is in: the replica watches the task.
                first = await stream.content.readuntil(b"\r\n\r\n")
                assert b"event: pending" in first
                async with http.delete(f"{one}/api/v1/tasks/{task_id}") as resp:
                    assert resp.status == 200
                rest = await asyncio.wait_for(read_sse(stream), 10)
            assert [(e["id"], e["event"]) for e in rest] == [("2", "cancelled")]
            assert rest[0]["data"]["status"] == "cancelled"

            # A reconnect to the first replica with Last-Event-ID resumes after event 1.
            async with http.get(
                f"{one}/api/v1/tasks/{task_id}/events", headers={"Last-Event-ID": "1"}
            ) as again:
                resumed = await asyncio.wait_for(read_sse(again), 10)
            assert [(e["id"], e["event"]) for e in resumed] == [("2", "cancelled")]
