"""The validator as a service: /health and /metrics, Redis outages, the process itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import aiohttp
import pytest

from devnet.redis_server import RedisServer, free_port
from services.validator.http import LIVENESS
from shared import keys
from shared.redis import create_redis
from shared.settings import RedisSettings, SettingsError, load_settings
from shared.tasks import Status
from tests.validator.conftest import (
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.text()


async def test_health_metrics_and_network_stats(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    miner = await start_miner(0)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [miner]))
    base = f"http://127.0.0.1:{settings.validator_port}"
    async with running(settings, validator_wallet):
        task = await create_task(redis)
        await wait_final(redis, task.task_id)
        status, health = await get_json(f"{base}/health")
        metrics = await get_text(f"{base}/metrics")
        stats = await eventually(lambda: redis.hgetall(keys.NETWORK_STATS))
    assert status == 200
    assert health["status"] == "ok" and health["redis"] == "ok" and health["miners"] == 1
    assert 'validator_tasks_total{outcome="completed",task_type="summarization"} 1.0' in metrics
    assert "validator_miner_latency_seconds_bucket" in metrics
    assert "validator_response_score_bucket" in metrics
    assert "validator_reclaims_total" in metrics or "validator_reclaims" in metrics
    assert stats[b"total_miners"] == b"1" and stats[b"available_miners"] == b"1"
    assert stats[b"connectivity"] == b"1.000" and stats[b"last_sync"].endswith(b"Z")


async def test_waits_for_redis_at_start_and_rides_out_an_outage(
    tmp_path, start_miner, validator_wallet
):
    server = RedisServer(tmp_path / "redis", free_port(), aof=True)
    miner = await start_miner(0)
    settings = validator_settings(server.url, write_miners(tmp_path / "m.json", [miner]))
    health_url = f"http://127.0.0.1:{settings.validator_port}/health"
    # Like the services' own client: retries on a connection the restart has closed.
    client = create_redis(load_settings(RedisSettings, {"REDIS_URL": server.url}))
    try:
        async with running(settings, validator_wallet):
            status, health = await get_json(health_url)
            assert (status, health["redis"]) == (200, "unavailable")
            await asyncio.to_thread(server.start)
            first = await create_task(client)
            assert (await wait_final(client, first.task_id)).status is Status.COMPLETED
            await asyncio.to_thread(server.stop)
            status, health = await get_json(health_url)
            assert (status, health["redis"]) == (200, "unavailable")
            await asyncio.to_thread(server.start)
            second = await create_task(client)
            assert (await wait_final(client, second.task_id)).status is Status.COMPLETED
    finally:
        await client.aclose()
        server.stop()


def test_heartbeat_must_be_at_most_half_the_reclaim_idle_time(redis_url):
    with pytest.raises(SettingsError, match=r"^HEARTBEAT_INTERVAL: must be at most half"):
        validator_settings(redis_url, None, heartbeat_interval=5, reclaim_idle=8)
    # Decoupled from TASK_TIMEOUT: a 10 minute attempt needs no longer RECLAIM_IDLE.
    assert validator_settings(redis_url, None, task_timeout=600).reclaim_idle == 8.0


async def run_validator(env: dict[str, str]) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.validator",
        env={**os.environ, "ENVIRONMENT": "test", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, [line for line in err.decode().splitlines() if line.strip()]


async def test_start_up_problems_are_one_line(tmp_path, wallet_dir, validator_wallet, redis_url):
    miners = tmp_path / "miners.json"
    miners.write_text("[]")
    ours = {"BT_WALLET_PATH": str(wallet_dir), "BT_WALLET_NAME": "validator"}
    no_wallet, chain_down, bad_file, bad_setting = await asyncio.gather(
        run_validator({"BT_WALLET_PATH": str(tmp_path / "none"), "MINERS_FILE": str(miners)}),
        run_validator({**ours, "BT_NETWORK": "ws://127.0.0.1:9", "MINERS_FILE": ""}),
        run_validator({**ours, "MINERS_FILE": str(tmp_path / "missing.json")}),
        run_validator({"RECLAIM_IDLE": "0"}),
    )
    assert no_wallet[0] == 1 and len(no_wallet[1]) == 1
    assert no_wallet[1][0].startswith("validator: wallet hotkey not found (BT_WALLET_PATH=")
    assert chain_down[0] == 1 and len(chain_down[1]) == 1
    assert chain_down[1][0].startswith("validator: cannot reach chain 'ws://127.0.0.1:9'")
    assert bad_file[0] == 1 and len(bad_file[1]) == 1
    assert bad_file[1][0].startswith("validator: MINERS_FILE ")
    assert bad_setting == (2, [bad_setting[1][0]])
    assert bad_setting[1][0].startswith("configuration error: RECLAIM_IDLE:")


async def test_the_process_serves_and_stops_on_sigterm(
    redis, redis_url, tmp_path, start_miner, wallet_dir, validator_wallet
):
    miner = await start_miner(0)
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "REDIS_URL": redis_url,
        "MINERS_FILE": write_miners(tmp_path / "m.json", [miner]),
        "BT_WALLET_PATH": str(wallet_dir),
        "BT_WALLET_NAME": "validator",
        "VALIDATOR_PORT": str(port),
        "WEBHOOK_SECRET": "whsec_c2VjcmV0",
        "BLOCK_TIMEOUT": "0.2",
        "SHUTDOWN_GRACE": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.validator", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        task = await create_task(redis)
        assert (await wait_final(redis, task.task_id, within=30)).status is Status.COMPLETED
        status, health = await get_json(f"http://127.0.0.1:{port}/health")
        assert status == 200 and health["mode"] == "static"
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith(b"{")]
    assert "validator_stopped" in events


async def test_health_fails_when_a_loop_has_died(redis, redis_url, tmp_path, validator_wallet):
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", []))
    async with running(settings, validator_wallet) as app:
        weights_loop = app[LIVENESS].loops["weights"]
        weights_loop.cancel()
        await asyncio.gather(weights_loop, return_exceptions=True)
        status, health = await get_json(f"http://127.0.0.1:{settings.validator_port}/health")
    assert status == 503
    assert health["status"] == "failing" and health["dead_loops"] == ["weights"]
