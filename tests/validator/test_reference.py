"""Transcription and TTS judged through the WhisperX pipeline (a devnet.whisperx instance
standing in for the lb): references once per task and in parallel, round trips, fallbacks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiohttp import web

from devnet import audio
from devnet.miner import leading_sentences
from devnet.whisperx import create_app as create_whisperx
from shared import keys
from shared.tasks import Status, TaskType
from tests.validator.conftest import (
    ARTICLE,
    RunningMiner,
    attempts,
    create_task,
    running,
    validator_settings,
    wait_final,
    write_miners,
)

SPOKEN = "the quarterly report shows steady growth in every region of the country"


@dataclass
class Pipeline:
    """A WhisperX instance on loopback that notes each transcription and who was busy then."""

    url: str = ""
    calls: list[int] = field(default_factory=list)  # answers the watched miner had sent
    watched: RunningMiner | None = None


@pytest.fixture
async def pipeline(aiohttp_server) -> Pipeline:
    state = Pipeline()
    app = create_whisperx(concurrency=4)

    @web.middleware
    async def note(request: web.Request, handler):
        if request.method == "POST":
            m = state.watched
            state.calls.append(len(m.activity.accepted) - m.activity.active if m else 0)
        return await handler(request)

    app.middlewares.append(note)
    server = await aiohttp_server(app, host="127.0.0.1")
    state.url = str(server.make_url("")).rstrip("/")
    return state


async def test_transcription_scored_against_the_reference(
    redis, redis_url, tmp_path, start_miner, validator_wallet, pipeline
):
    accurate = await start_miner(0, latency=0.5)
    noisy = await start_miner(1, "noisy", wer=0.5)
    garbage = await start_miner(2, "garbage")
    pipeline.watched = accurate
    task = await create_task(redis, TaskType.TRANSCRIPTION, audio.synthesize(SPOKEN))
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate, noisy, garbage]),
        lb_url=pipeline.url,
    )  # fmt: skip
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED
    assert final.result["miner_uid"] == 0 and final.result["accuracy_score"] == 1.0
    assert await redis.get(keys.task_output(task.task_id)) == SPOKEN.encode()
    [record] = await attempts(redis, task.task_id)
    accuracy = {r["uid"]: r["accuracy"] for r in record["responses"]}
    assert accuracy[2] == 0.0 and 0 < accuracy[1] < 1
    # One reference per task, requested before the winning miner had answered: it runs
    # alongside the miner queries, not after them.
    assert pipeline.calls == [0]
    assert accurate.activity.accepted


async def test_reference_is_computed_once_across_retries(
    redis, redis_url, tmp_path, start_miner, validator_wallet, pipeline
):
    flaky = await start_miner(0, "flaky", failure_rate=1.0)
    task = await create_task(redis, TaskType.TRANSCRIPTION, audio.synthesize(SPOKEN))
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [flaky]), lb_url=pipeline.url
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.FAILED and final.attempts == 3
    assert len(pipeline.calls) == 1


async def test_tts_round_trip(redis, redis_url, tmp_path, start_miner, validator_wallet, pipeline):
    accurate = await start_miner(0, latency=0.2)
    noisy = await start_miner(1, "noisy", wer=0.5)
    garbage = await start_miner(2, "garbage")
    task = await create_task(redis, TaskType.TTS, SPOKEN.encode())
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate, noisy, garbage]),
        lb_url=pipeline.url,
    )  # fmt: skip
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED
    assert final.result["miner_uid"] == 0 and final.result["accuracy_score"] == 1.0
    speech = await redis.get(keys.task_output(task.task_id))
    assert audio.embedded_text(speech) == SPOKEN
    [record] = await attempts(redis, task.task_id)
    by_uid = {r["uid"]: r for r in record["responses"]}
    assert by_uid[2]["problem"] == "undecodable" and by_uid[2]["score"] == 0.0
    assert 0 < by_uid[1]["accuracy"] < 1
    # Two answers decoded, two round trips through the pipeline (no reference for TTS).
    assert len(pipeline.calls) == 2


async def test_without_the_pipeline_consensus_ranks_but_accuracy_stays_unknown(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    """The lb is unreachable: agreement between answers picks the honest one, but it is no
    accuracy (miners that fail alike agree too): the result says null and why, and no
    running score moves."""
    honest = [await start_miner(0, latency=0.3), await start_miner(1, latency=0.3)]
    garbage = await start_miner(2, "garbage")
    task = await create_task(redis, TaskType.TRANSCRIPTION, audio.synthesize(SPOKEN))
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [*honest, garbage]), reference_timeout=1
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED
    assert final.result["miner_uid"] in (0, 1) and final.result["accuracy_score"] is None
    reason = final.result["accuracy_reason"]
    assert reason.startswith("no reference transcript: the WhisperX pipeline is unreachable")
    assert reason.endswith("ranked by agreement with the other miners' answers")
    [record] = await attempts(redis, task.task_id)
    by_uid = {r["uid"]: r for r in record["responses"]}
    assert [by_uid[uid]["agreement"] for uid in (0, 1, 2)] == [1.0, 1.0, 0.0]
    assert {r["accuracy"] for r in by_uid.values()} == {None}
    assert by_uid[2]["problem"] == "agrees_with_no_other_answer"
    assert await redis.hgetall(keys.MINER_SCORES) == {}


async def test_summaries_scored_by_rouge_l_against_a_reference_summarizer(
    redis, redis_url, tmp_path, start_miner, validator_wallet, aiohttp_server
):
    asked: list[dict] = []

    async def summarize(request: web.Request) -> web.Response:
        asked.append(await request.json())
        return web.json_response({"summary": leading_sentences(asked[-1]["text"])})

    app = web.Application()
    app.router.add_post("/summarize", summarize)
    summarizer = await aiohttp_server(app, host="127.0.0.1")
    accurate = await start_miner(0, latency=0.2)
    noisy = await start_miner(1, "noisy", wer=0.4)
    task = await create_task(redis, language="en")
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate, noisy]),
        summarizer_url=str(summarizer.make_url("/summarize")),
    )  # fmt: skip
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.result["miner_uid"] == 0 and final.result["accuracy_score"] == 1.0
    assert asked == [{"text": ARTICLE, "language": "en"}]
    [record] = await attempts(redis, task.task_id)
    assert 0 < {r["uid"]: r["accuracy"] for r in record["responses"]}[1] < 1
