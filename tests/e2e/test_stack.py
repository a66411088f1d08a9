"""End to end: gateway -> Redis streams -> validator -> signed miner requests -> result,
with the reference transcripts from the lb in front of simulated WhisperX instances."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import signal
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from devnet import audio
from devnet.stack import MINER_PROFILES, Stack
from shared import keys
from tests.e2e.conftest import gateway, wait_final

PROFILES = [profile for profile, _ in MINER_PROFILES]
ACCURATE_UID = 1 + PROFILES.index("accurate")
GARBAGE_UID = 1 + PROFILES.index("garbage")
SPOKEN = "the validator compares every miner with the reference transcript"
ARTICLE = (
    "Bittensor subnets reward miners for useful work. Validators send tasks to miners. "
    "They score each answer for accuracy and for speed. The best answer is returned to "
    "the client and the scores set the weights on chain."
)


async def submit(session: aiohttp.ClientSession, stack: Stack, kind: str, **extra: Any) -> str:
    url = f"{gateway(stack)}/{kind}"
    if kind == "transcription":
        form = aiohttp.FormData()
        form.add_field("audio_file", audio.synthesize(SPOKEN), filename="a.wav")
        form.add_field("source_language", "en")
        for name, value in extra.items():
            form.add_field(name, value)
        request = session.post(url, data=form)
    else:
        text = ARTICLE if kind == "summarization" else "Hello from the end-to-end test."
        request = session.post(url, json={"text": text, "source_language": "en", **extra})
    async with request as resp:
        body = await resp.json()
        assert resp.status == 202, body
        return body["task_id"]


async def test_each_task_type_completes_with_scores_and_the_accurate_miner_wins(stack):
    kinds = ["transcription"] * 5 + ["tts", "summarization"]
    async with aiohttp.ClientSession() as session:
        ids = [(kind, await submit(session, stack, kind)) for kind in kinds]
        views = await wait_final(session, stack, [task_id for _, task_id in ids])
        assert len(views) == len(kinds)
        results = {task_id: views[task_id]["result"] for _, task_id in ids}
        for kind, task_id in ids:
            result = results[task_id]
            assert views[task_id]["status"] == "completed", views[task_id]
            assert 0 < result["speed_score"] <= 1 and 0 < result["accuracy_score"] <= 1
            assert result["model_used"] and result["processing_time"] > 0
            assert result["miner_uid"] != GARBAGE_UID, (kind, result)
        transcriptions = [results[task_id] for kind, task_id in ids if kind == "transcription"]
        # The reference decides: the best answer is exact. A noisy miner can be exact by
        # chance on a short text and then wins on speed, so the accurate one wins "most".
        assert {r["output_text"] for r in transcriptions} == {SPOKEN}
        assert {r["accuracy_score"] for r in transcriptions} == {1.0}
        assert sum(r["miner_uid"] == ACCURATE_UID for r in transcriptions) >= 3
        tts_id = ids[-2][1]
        tts = base64.b64decode(results[tts_id]["output_data"])
        assert audio.embedded_text(tts) == "Hello from the end-to-end test."
        assert results[tts_id]["accuracy_score"] == 1.0
        async with session.get(f"{gateway(stack)}/tasks/{tts_id}/output") as resp:
            assert resp.content_type == "audio/wav" and await resp.read() == tts
        summary = results[ids[-1][1]]["output_text"]
        assert summary and len(summary) < len(ARTICLE)


async def test_webhook_arrives_signed_with_the_task_as_the_api_shows_it(stack, aiohttp_server):
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    callback = str(server.make_url("/hook"))
    async with aiohttp.ClientSession() as session:
        task_id = await submit(session, stack, "tts", callback_url=callback)
        (view,) = (await wait_final(session, stack, [task_id])).values()
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.1)
    assert len(received) == 1
    headers, body = received[0]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    digest = hmac.new(stack.webhook_secret.encode(), signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    event = json.loads(body)
    assert event["type"] == "task.completed"
    # The body stays within 64 KiB: this TTS audio's base64 would not fit, so the webhook
    # links it (output_url) where the status view still embeds it (up to 1 MiB).
    assert len(body) <= 64 * 1024 and len(view["result"]["output_data"]) > 64 * 1024
    assert event["data"]["result"]["output_data"] is None
    assert event["data"]["result"]["output_url"] == view["result"]["output_url"]
    event["data"]["result"]["output_data"] = view["result"]["output_data"]
    assert event["data"] == view


async def test_a_killed_validator_loses_no_task_and_none_completes_twice(stack):
    redis = Redis.from_url(stack.redis_url)
    async with aiohttp.ClientSession() as session:
        try:
            before = await redis.llen(keys.durations("summarization"))
            ids = [await submit(session, stack, "summarization") for _ in range(24)]
            for _ in range(100):  # wait until work is in flight, then kill mid-flight
                if await redis.zcard(keys.status_index("processing")):
                    break
                await asyncio.sleep(0.05)
            stack.kill("validator", signal.SIGKILL)
            stack.spawn(stack.services["validator"])
            views = await wait_final(session, stack, ids, patience=120)
            failed = {
                v["task_id"]: v["error"] for v in views.values() if v["status"] != "completed"
            }
            assert failed == {}
            assert len(views) == len(ids)
            # One duration is recorded per completion: a second completion would add one.
            assert await redis.llen(keys.durations("summarization")) == before + len(ids)
        finally:
            await redis.aclose()


async def test_transcription_completes_with_a_whisperx_instance_down(stack):
    stack.kill("whisperx-1", signal.SIGKILL)
    async with aiohttp.ClientSession() as session:
        ids = [await submit(session, stack, "transcription") for _ in range(6)]
        views = await wait_final(session, stack, ids)
        assert [v["status"] for v in views.values()] == ["completed"] * 6
        # The reference still came from a live instance: the accurate answer scores 1.
        assert {v["result"]["accuracy_score"] for v in views.values()} == {1.0}
        # It leaves the rotation: at its first refused request, or after three failed polls.
        killed = stack.services["whisperx-1"].url
        for _ in range(100):
            async with session.get(f"http://127.0.0.1:{stack.ports.lb}/health") as resp:
                health = await resp.json()
            states = {i["url"]: i["is_healthy"] for i in health["instances"]}
            if not states[killed]:
                break
            await asyncio.sleep(0.1)
    assert states[killed] is False
    assert health["healthy_instances"] == 2
