"""Hostile miners (the scripted servers of test_hostile_miners.py) answering a real validator
beside an honest one: they score 0, the honest one wins, and no validator loop stalls."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from devnet import audio
from devnet.redis_server import free_port
from devnet.stack import Service, Stack
from devnet.wallets import ensure_wallet
from shared import keys
from shared.tasks import Status, TaskType
from tests.validator.conftest import (
    attempts,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
)
from tests.validator.test_hostile_miners import LIMIT, Script, ScriptedMiner

HOSTILE_SCRIPTS = {
    "huge": Script(body=json.dumps({"output": "x" * (LIMIT * 4)}).encode()),
    "non_utf8": Script(body=b'{"output": "\xff\xfe\xfa not utf-8", "model": "\xc3"}'),
    "wrong_types": Script(body=b'{"output": ["a", "list"], "processing_time": "fast"}'),
    "json_list": Script(body=b'["output", "the quick brown fox"]'),
    "never_ends": Script(body=b'{"output": "the quick', then="trickle"),
}


async def test_hostile_miners_score_0_and_the_honest_one_wins(
    redis, redis_url, tmp_path, start_miner, validator_wallet, wallet_dir, aiohttp_server
):
    """Five hostile miners and an honest one answer the same task through a real
    validator: the task completes with the honest answer, every hostile miner's answer is
    a recorded failure of the expected kind, their running scores are 0, and no loop of
    the validator died."""
    honest = await start_miner(0)
    hostile: dict[str, dict[str, Any]] = {}
    for uid, (kind, script) in enumerate(HOSTILE_SCRIPTS.items(), start=10):
        hotkey = ensure_wallet(wallet_dir, f"hostile-{kind}").hotkey.ss58_address
        miner = ScriptedMiner(hotkey, script)
        server = await aiohttp_server(miner.app(), host="127.0.0.1")
        url = str(server.make_url("")).rstrip("/")
        hostile[kind] = {"uid": uid, "hotkey": hotkey, "url": url}
    listing = [honest.listing(), *hostile.values()]
    miners_file = tmp_path / "miners.json"
    miners_file.write_text(json.dumps(listing))
    task = await create_task(redis, TaskType.SUMMARIZATION)
    settings = validator_settings(
        redis_url,
        str(miners_file),
        max_miners_per_request=len(listing),
        miner_max_response_bytes=LIMIT,
        task_timeout=1,
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{settings.validator_port}/health"
            async with session.get(url) as resp:
                health = await resp.json()
    assert final.status is Status.COMPLETED and final.result["miner_uid"] == honest.uid
    (record,) = await attempts(redis, task.task_id)
    errors = {r["uid"]: r.get("error") for r in record["responses"]}
    assert {kind: errors[h["uid"]] for kind, h in hostile.items()} == {
        "huge": "too_large",
        "non_utf8": "bad_json",
        "wrong_types": "empty_output",
        "json_list": "bad_json",
        "never_ends": "timeout",
    }
    scores = {k.decode(): float(v) for k, v in (await redis.hgetall(keys.MINER_SCORES)).items()}
    assert scores[honest.hotkey] > 0
    assert {kind: scores[h["hotkey"]] for kind, h in hostile.items()} == dict.fromkeys(hostile, 0)
    assert health["status"] == "ok" and health["dead_loops"] == []


async def test_huge_hostile_transcripts_judged_by_consensus_cannot_stall_the_validator(
    redis, redis_url, tmp_path, start_miner, wallet_dir, validator_wallet, aiohttp_server
):
    """Without a reference (the lb is down) transcriptions are judged by consensus, WER of
    every answer against every other. Two hostile miners answer with a million junk words
    each (well under MINER_MAX_RESPONSE_BYTES): aligning them word by word is quadratic and
    held the validator's event loop for hours. The task must complete with the honest
    answer, and /health must keep answering (a 5 s client timeout) meanwhile. The validator
    runs as its own process, so a stalled one fails this test instead of freezing it."""
    honest = [await start_miner(0), await start_miner(1)]
    hostile = []
    for uid, prefix in ((10, "a"), (11, "b")):
        hotkey = ensure_wallet(wallet_dir, f"hostile-huge-{prefix}").hotkey.ss58_address
        junk = " ".join(f"{prefix}{i}" for i in range(1_000_000))
        miner = ScriptedMiner(hotkey, Script(body=json.dumps({"output": junk}).encode()))
        server = await aiohttp_server(miner.app(), host="127.0.0.1")
        hostile.append({"uid": uid, "hotkey": hotkey, "url": str(server.make_url("")).rstrip("/")})
    miners_file = tmp_path / "miners.json"
    miners_file.write_text(json.dumps([m.listing() for m in honest] + hostile))
    spoken = "consensus decides when the reference pipeline is away"
    port = free_port()
    env = {
        "ENVIRONMENT": "test",
        "REDIS_URL": redis_url,
        "MINERS_FILE": str(miners_file),
        "LB_URL": "http://127.0.0.1:9",  # closed: no reference, so consensus judges
        "BT_WALLET_PATH": str(wallet_dir),
        "BT_WALLET_NAME": "validator",
        "BT_WALLET_HOTKEY": "default",
        "VALIDATOR_PORT": str(port),
        "MAX_MINERS_PER_REQUEST": "4",
        "TASK_TIMEOUT": "10",
        "REFERENCE_TIMEOUT": "2",
        "LOG_LEVEL": "WARNING",
    }
    assert validator_wallet.name == env["BT_WALLET_NAME"]
    stack = Stack(tmp_path / "validator")
    validator = Service("validator", ["-m", "services.validator"], env, port, "/health")
    stack.services[validator.name] = validator
    polls = failed_polls = 0
    try:
        stack.spawn(validator)
        await asyncio.to_thread(stack.wait_ready, validator, 30)
        task = await create_task(redis, TaskType.TRANSCRIPTION, audio.synthesize(spoken))
        async with aiohttp.ClientSession() as session:

            async def final() -> bool:
                nonlocal polls, failed_polls
                polls += 1
                try:
                    async with asyncio.timeout(5), session.get(f"{validator.url}/health") as r:
                        await r.read()
                except TimeoutError:
                    failed_polls += 1
                status = await redis.hget(keys.task(task.task_id), "status")
                return status in (b"completed", b"failed")

            await eventually(final, within=60)
    finally:
        stack.stop()
    done = await wait_final(redis, task.task_id)
    assert done.status is Status.COMPLETED, done.error
    assert done.result["miner_uid"] in (0, 1)
    assert (await redis.get(keys.task_output(task.task_id))) == spoken.encode()
    assert polls > 0 and failed_polls == 0
