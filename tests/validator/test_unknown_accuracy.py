"""When the reference cannot be produced, accuracy is unknown: null with a reason in the
task's result, never 1.0, and no running score moves. The pipeline is real: a devnet
WhisperX instance (422 for audio it cannot read) or a real lb with no live instance (503)."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp import web

from devnet import audio, whisperx
from devnet.redis_server import free_port
from devnet.wallets import ensure_wallet
from services.lb.app import create_app as create_lb
from shared import keys
from shared.tasks import Status, TaskType
from tests.lb.conftest import lb_settings
from tests.validator.conftest import (
    attempts,
    create_task,
    running,
    validator_settings,
    wait_final,
    write_miners,
)
from tests.validator.test_hostile_miners import Script, ScriptedMiner

SPOKEN = "the reference pipeline decides how good each transcript is"
#: A WAV without the embedded transcript, as espeak-ng or a microphone would give: the
#: devnet's WhisperX and miners have no speech model to read it with.
UNREADABLE = audio.synthesize("", 2.0)


@pytest.fixture
async def pipeline_url(aiohttp_server) -> str:
    server = await aiohttp_server(whisperx.create_app(), host="127.0.0.1")
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def down_lb_url(aiohttp_server) -> str:
    """A real lb whose only instance is down: it answers 503 no_healthy_instance."""
    server = await aiohttp_server(
        create_lb(lb_settings([f"http://127.0.0.1:{free_port()}"])), host="127.0.0.1"
    )
    return str(server.make_url("")).rstrip("/")


async def streak(redis, hotkey: str) -> int:
    return int(await redis.hget(keys.miner_stats(hotkey), "consecutive_failures") or 0)


async def scripted_miner(wallet_dir, aiohttp_server, name: str, body: dict) -> dict:
    """A miner that answers every request with ``body`` (e.g. one with a real model)."""
    hotkey = ensure_wallet(wallet_dir, name).hotkey.ss58_address
    server = await aiohttp_server(
        ScriptedMiner(hotkey, Script(body=json.dumps(body).encode())).app(), host="127.0.0.1"
    )
    return {"hotkey": hotkey, "url": str(server.make_url("")).rstrip("/")}


async def test_audio_the_pipeline_cannot_read_is_never_scored(
    redis, redis_url, tmp_path, start_miner, validator_wallet, wallet_dir, aiohttp_server,
    pipeline_url,
):  # fmt: skip
    """A miner with a real speech model transcribes audio the devnet's WhisperX cannot read
    (422): its answer is returned, but scored as unknown. The devnet miners decline (422)
    what WhisperX rejects too, and are not held to it."""
    accurate, noisy = await start_miner(0), await start_miner(1, "noisy")
    real = await scripted_miner(
        wallet_dir, aiohttp_server, "real-model", {"output": SPOKEN, "model": "whisper-large-v3"}
    )
    miners = [accurate.listing(), noisy.listing(), {"uid": 7, **real}]
    (tmp_path / "m.json").write_text(json.dumps(miners))
    task = await create_task(redis, TaskType.TRANSCRIPTION, UNREADABLE)
    settings = validator_settings(redis_url, str(tmp_path / "m.json"), lb_url=pipeline_url)
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED
    assert final.result["miner_uid"] == 7 and final.result["accuracy_score"] is None
    assert final.result["accuracy_reason"] == (
        f"no reference transcript: the WhisperX pipeline answered 422: {whisperx.NO_TRANSCRIPT}"
    )
    [record] = await attempts(redis, task.task_id)
    errors = {r["uid"]: r.get("error") for r in record["responses"]}
    assert errors == {0: "http_422", 1: "http_422", 7: None}
    # Declining input the pipeline rejects is right: no failure streak, no score.
    assert [await streak(redis, m.hotkey) for m in (accurate, noisy)] == [0, 0]
    assert await redis.hgetall(keys.MINER_SCORES) == {}


async def test_unreadable_audio_without_any_answer_fails_with_both_verdicts(
    redis, redis_url, tmp_path, start_miner, validator_wallet, pipeline_url
):
    mp3ish = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 256
    accurate, noisy = await start_miner(0), await start_miner(1, "noisy")
    task = await create_task(redis, TaskType.TRANSCRIPTION, mp3ish)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate, noisy]), lb_url=pipeline_url
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.FAILED and final.attempts == 3
    assert final.error == (
        "no usable answer from miners after 3 attempts (http_422 x6);"
        f" the WhisperX pipeline answered 422: {whisperx.NOT_WAV}"
    )
    assert [await streak(redis, m.hotkey) for m in (accurate, noisy)] == [0, 0]


async def test_a_down_pipeline_leaves_accuracy_unknown_with_its_answer(
    redis, redis_url, tmp_path, start_miner, validator_wallet, down_lb_url
):
    """The lb answers 503: the lone answer completes the task, unscored; a decline is then
    an ordinary failed response (the pipeline said nothing about the input)."""
    accurate = await start_miner(0)
    task = await create_task(redis, TaskType.TRANSCRIPTION, audio.synthesize(SPOKEN))
    declined = await create_task(redis, TaskType.TRANSCRIPTION, UNREADABLE)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate]), lb_url=down_lb_url
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
        failed = await wait_final(redis, declined.task_id)
    assert final.status is Status.COMPLETED
    assert await redis.get(keys.task_output(task.task_id)) == SPOKEN.encode()
    assert final.result["accuracy_score"] is None
    # The lb's message depends on whether its health poll has marked the instance down yet.
    reason = final.result["accuracy_reason"]
    assert reason.startswith("no reference transcript: the WhisperX pipeline answered 503: No ")
    assert "WhisperX instance" in reason
    assert failed.status is Status.FAILED
    assert failed.error == "no usable answer from miners after 3 attempts (http_422 x3)"
    assert await streak(redis, accurate.hotkey) == 3
    # The one answer was unscored and the declines were failures: the running score is 0.
    assert await redis.hgetall(keys.MINER_SCORES) == {accurate.hotkey.encode(): b"0.000000"}


async def test_tts_audio_that_cannot_be_round_tripped_is_unscored(
    redis, redis_url, tmp_path, validator_wallet, wallet_dir, aiohttp_server, pipeline_url
):
    """Real speech (no embedded text) passes the audio checks, but the devnet pipeline
    cannot transcribe it back: accuracy unknown, not a made-up round trip."""
    text = "a miner with a real voice"
    speech = audio.synthesize("", audio.speech_duration(text))
    real = await scripted_miner(
        wallet_dir, aiohttp_server, "speaking-miner",
        {"output": base64.b64encode(speech).decode(), "model": "espeak"},
    )  # fmt: skip
    miners = tmp_path / "m.json"
    miners.write_text(json.dumps([{"uid": 5, **real}]))
    task = await create_task(redis, TaskType.TTS, text.encode())
    settings = validator_settings(redis_url, str(miners), lb_url=pipeline_url)
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED and final.result["accuracy_score"] is None
    assert final.result["accuracy_reason"] == (
        f"no round-trip transcript: the WhisperX pipeline answered 422: {whisperx.NO_TRANSCRIPT}"
    )
    assert await redis.hgetall(keys.MINER_SCORES) == {}


@pytest.mark.parametrize("text", ["Long article text here...", "Long article text..."])
async def test_a_text_too_short_to_summarize_is_its_own_summary(
    redis, redis_url, tmp_path, start_miner, validator_wallet, aiohttp_server, text
):
    """The seed's examples: no summary can be shorter, so the text is the reference (the
    configured summarizer is not asked) and the answer that keeps it whole wins."""
    asked: list[dict] = []

    async def summarize(request: web.Request) -> web.Response:
        asked.append(await request.json())
        return web.json_response({"summary": "never used"})

    app = web.Application()
    app.router.add_post("/summarize", summarize)
    summarizer = await aiohttp_server(app, host="127.0.0.1")
    miners = [await start_miner(0, latency=0.2), await start_miner(1, "noisy", wer=0.5)]
    miners.append(await start_miner(2, "garbage"))
    task = await create_task(redis, TaskType.SUMMARIZATION, text.encode())
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", miners),
        summarizer_url=str(summarizer.make_url("/summarize")),
    )  # fmt: skip
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED, final.error
    assert final.result["miner_uid"] == 0 and final.result["accuracy_score"] == 1.0
    assert final.result["accuracy_reason"] is None
    assert await redis.get(keys.task_output(task.task_id)) == text.encode()
    assert asked == []
    [record] = await attempts(redis, task.task_id)
    assert {r["uid"]: r["accuracy"] for r in record["responses"]}[2] == 0.0
