"""The operator state a validator publishes (dashboard data in Redis) and exports (/metrics):
against real Redis, a real devnet miner, and a real lb in front of a devnet WhisperX."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from devnet.whisperx import create_app as create_whisperx
from services.lb.app import create_app as create_lb
from services.lb.settings import LbSettings
from services.validator.http import LIVENESS
from services.validator.judging import DECLINED
from services.validator.metrics import DECLINED_KIND, answer_outcome
from shared import keys, timeline
from shared.settings import load_settings
from tests.fullredis import fill, full_redis_server, make_room, reset
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


@pytest.fixture
async def lb_url() -> AsyncIterator[str]:
    """A real lb in front of one devnet WhisperX instance, both on loopback."""
    whisperx = TestServer(create_whisperx(), host="127.0.0.1")
    await whisperx.start_server()
    settings = load_settings(
        LbSettings, {"INSTANCE_1_URL": str(whisperx.make_url("")), "ENVIRONMENT": "test"}
    )
    lb = TestServer(create_lb(settings), host="127.0.0.1")
    await lb.start_server()
    yield str(lb.make_url("")).rstrip("/")
    await lb.close()
    await whisperx.close()


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_a_replica_publishes_registry_work_and_lb_health_and_exports_shared_gauges(
    redis, redis_url, tmp_path, start_miner, validator_wallet, lb_url
):
    miner = await start_miner(0)
    # OPS_INTERVAL is left at its default: the first round runs as the loop starts.
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [miner]), lb_url=lb_url
    )
    async with running(settings, validator_wallet, name="replica-a"):
        task = await create_task(redis)
        await wait_final(redis, task.task_id)
        registry = json.loads(await eventually(lambda: redis.get(keys.OPS_MINERS)))
        replica = json.loads(await redis.get(keys.ops_validator("replica-a")))
        lb = json.loads(await redis.get(keys.OPS_LB))
        seen = await redis.zscore(keys.OPS_VALIDATORS, "replica-a")

        async def scored() -> dict:
            # The running score reaches the gauges at the next round (OPS_INTERVAL).
            metrics = await scrape(settings.validator_port)
            return metrics if ("validator_miner_score", (("uid", "0"),)) in metrics else {}

        metrics = await eventually(scored, within=30)
    assert registry == [{"uid": 0, "hotkey": miner.hotkey, "stake": 0.0}]
    assert replica["consumer"] == "replica-a" and replica["slots"] == 10
    assert replica["mode"] == "static" and replica["miners"] == 1
    assert seen is not None
    assert lb["reachable"] is True and lb["url"] == lb_url
    assert lb["health"]["healthy_instances"] == 1 and len(lb["health"]["instances"]) == 1
    uid = (("uid", "0"),)
    assert metrics["validator_miner_info", (("hotkey", miner.hotkey), ("uid", "0"))] == 1
    assert 0 < metrics["validator_miner_score", uid] <= 1
    assert metrics["validator_miner_in_flight", uid] == 0
    assert metrics["validator_miner_answers_total", (("outcome", "usable"), *uid)] == 1
    assert metrics["validator_miner_request_seconds_count", uid] == 1
    completed = (("outcome", "completed"), ("task_type", "summarization"))
    assert metrics["validator_task_duration_seconds_count", completed] == 1
    assert metrics["validator_task_attempts_sum", completed] == 1
    assert metrics["validator_tasks_total", completed] == 1
    assert metrics["validator_redis_up", ()] == 1
    assert metrics["validator_dead_letters", ()] == 0
    assert metrics["validator_webhook_backlog", (("state", "due"),)] == 0
    assert metrics["validator_weights_interval_seconds", ()] == 3600
    since = float(await redis.hget(keys.WEIGHTS_LAST, "since"))
    assert metrics["validator_weights_last_set_timestamp_seconds", ()] == since
    # The dashboard's chart and the miner's latency samples.
    points = await timeline.read(redis, time.time())
    assert sum(p.finished.get("completed", 0) for p in points) == 1
    assert len(await redis.lrange(keys.miner_latencies(miner.hotkey), 0, -1)) == 1


async def test_an_unreachable_lb_is_published_with_the_reason(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    # validator_settings points LB_URL at a port nothing listens on.
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [miner]))
    async with running(settings, validator_wallet, name="replica-b"):
        lb = json.loads(await eventually(lambda: redis.get(keys.OPS_LB)))
    assert lb["reachable"] is False and lb["error"]
    assert "health" not in lb


async def test_published_keys_expire_when_nobody_refreshes_them(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [miner]))
    async with running(settings, validator_wallet, name="replica-c"):
        await eventually(lambda: redis.get(keys.ops_validator("replica-c")))
    for key in (keys.OPS_MINERS, keys.OPS_LB, keys.ops_validator("replica-c")):
        assert 0 < await redis.ttl(key) <= 15, key  # 3 x OPS_INTERVAL


@pytest.mark.parametrize(
    ("error", "usable", "outcome"),
    [
        (None, True, "usable"),
        (None, False, "unusable"),
        ("timeout", False, "timeout"),
        ("connection", False, "connection"),
        ("http_500", False, "http_error"),
        ("http_418", False, "http_error"),
        ("http_422", False, "declined"),
        ("bad_json", False, "bad_answer"),
        ("too_large", False, "bad_answer"),
        ("empty_output", False, "bad_answer"),
    ],
)
def test_answer_outcomes_are_a_fixed_set_whatever_miners_send(error, usable, outcome):
    assert answer_outcome(error, usable) == outcome
    assert DECLINED_KIND == DECLINED  # the judging's name for a miner's 422


async def test_weight_rounds_are_recorded_for_operators(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [miner]))
    async with running(settings, validator_wallet, name="replica-w") as app:
        weights = components(app).weights
        await eventually(lambda: redis.hget(keys.WEIGHTS_LAST, "since"))
        assert await weights.tick() is None  # no miner has a score yet
        skipped = await redis.hgetall(keys.WEIGHTS_LAST)
        task = await create_task(redis)
        await wait_final(redis, task.task_id)
        await redis.delete(keys.WEIGHTS_LOCK)  # the round above took this interval's lock
        assert await weights.tick() == {0: 1.0}
        logged = await redis.hgetall(keys.WEIGHTS_LAST)
    assert skipped[b"outcome"] == b"skipped_empty" and b"set_at" not in skipped
    assert skipped[b"by"] == b"replica-w" and float(skipped[b"interval"]) == 3600
    assert logged[b"outcome"] == b"logged" and logged[b"mode"] == b"static"
    assert logged[b"uids"] == b"1" and float(logged[b"set_at"]) >= float(logged[b"since"])
    assert logged[b"since"] == skipped[b"since"]  # kept from the first round on


async def test_a_full_redis_skips_operator_rounds_and_the_loop_lives_on(
    tmp_path, start_miner, validator_wallet
):
    server = full_redis_server(tmp_path / "full-redis").start()
    small = Redis.from_url(server.url)
    try:
        await reset(small)
        miner = await start_miner(0)
        settings = validator_settings(server.url, write_miners(tmp_path / "m.json", [miner]))
        await fill(small)  # before the replica starts: its first publications are refused
        async with running(settings, validator_wallet, name="replica-full") as app:
            metrics = components(app).metrics
            await eventually(
                lambda: _async(metrics.value("validator_storage_full_total", loop="operations")),
                within=30,
            )
            assert await small.get(keys.OPS_MINERS) is None
            assert "operations" not in app[LIVENESS].dead()
            await make_room(small)
            registry = await eventually(lambda: small.get(keys.OPS_MINERS), within=30)
        assert json.loads(registry)[0]["hotkey"] == miner.hotkey
    finally:
        await small.aclose()
        server.stop()


async def _async(value: float) -> float:
    return value
