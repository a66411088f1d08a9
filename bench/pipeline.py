"""Scenario 5: pipeline overhead. Summarization tasks go gateway -> Redis stream ->
validator -> 5 instant miners (devnet miner, latency 0) -> result, with one validator
process; the miners add no time of their own, so what is measured is the pipeline.

- throughput: BATCH tasks submitted at once; tasks per second from the first task's
  creation to the last one's completion (both stored by the services in the task hash);
  CPU seconds per task of each process, from /proc;
- latency: tasks submitted one at a time at PACED_RATE per second (far below capacity), so
  the figure is the pipeline's own delay, not a backlog: submission (client clock before
  the POST) to the first signed request a miner received (bench/miner_host.py stamps it);
- scaling: the same batches with a second validator replica on the same Redis (same
  consumer group); tasks per second with two replicas over tasks per second with one;
- profile: one more batch with py-spy attached to the validator (not counted above);
  busy time by category, among them request signing; and a direct timing of one
  ``bt.http_auth.sign`` call.

Summarization is used because its judging needs no reference service (no lb); the
validator runs with its defaults otherwise (MAX_CONCURRENT_TASKS 10, MINER_MAX_IN_FLIGHT 8),
in production mode (JSON logs at INFO, to a file).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import bittensor as bt
import redis

from bench.common import (
    PY,
    WORK,
    Server,
    log,
    percentile,
    running,
    spread,
)
from bench.profile import Recorder
from devnet import init
from devnet.redis_server import RedisServer, free_port
from shared import keys

MINERS = 5
TEXT = (
    "The validator sends every task to several miners. Each answer is scored for accuracy "
    "and speed. The best answer becomes the result. Miners that answer well earn weight."
)


def submit_body() -> dict[str, Any]:
    return {"text": TEXT, "source_language": "en", "priority": "normal"}


async def submit(session: aiohttp.ClientSession, url: str) -> tuple[str, float]:
    """One submission; its task id and the client's time just before sending it."""
    sent = time.time()
    async with session.post(url + "/api/v1/summarization", json=submit_body()) as resp:
        if resp.status != 202:
            raise RuntimeError(f"gateway answered {resp.status}: {await resp.text()}")
        return (await resp.json())["task_id"], sent


async def submit_batch(url: str, count: int, concurrency: int = 16) -> dict[str, float]:
    """``count`` submissions as fast as ``concurrency`` connections go."""
    ids: dict[str, float] = {}
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in queue:
                task_id, sent = await submit(session, url)
                ids[task_id] = sent

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def submit_paced(url: str, count: int, rate: float) -> dict[str, float]:
    """``count`` submissions, one every 1/``rate`` s."""
    ids: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        start = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            task_id, sent = await submit(session, url)
            ids[task_id] = sent
    return ids


def wait_final(client: redis.Redis, ids: list[str], timeout: float) -> dict[str, dict[str, str]]:
    """Poll the task hashes until every task is completed or failed; their fields."""
    deadline = time.monotonic() + timeout
    while True:
        pipe = client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hgetall(keys.task(task_id))
        rows = [{k.decode(): v.decode() for k, v in row.items()} for row in pipe.execute()]
        if all(r.get("status") in ("completed", "failed") for r in rows):
            return dict(zip(ids, rows, strict=True))
        if time.monotonic() > deadline:
            raise RuntimeError("tasks did not finish in time")
        time.sleep(0.05)


async def miner_activity(miners: list[Server]) -> dict[str, dict[str, float]]:
    """task id -> earliest signing time (nonce) and earliest arrival at any miner."""
    first: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as session:
        for m in miners:
            async with session.get(m.url + "/_bench/activity") as resp:
                for entry in (await resp.json())["accepted"]:
                    seen = first.setdefault(
                        entry["task_id"], {"signed": float("inf"), "received": float("inf")}
                    )
                    seen["signed"] = min(seen["signed"], entry["nonce"] / 1e9)
                    if entry["received"] is not None:
                        seen["received"] = min(seen["received"], entry["received"])
    return first


def sign_cost(wallet_path: Path, receiver: str, calls: int = 500) -> dict[str, float]:
    """Microseconds per ``bt.http_auth.sign`` call, and per verify (the miner's side)."""
    wallet = bt.Wallet(init.VALIDATOR_WALLET, "default", str(wallet_path))
    hotkey = wallet.hotkey
    body = json.dumps({"task_id": "x" * 36, "input": TEXT}).encode()
    path = "/v1/summarization"
    start = time.perf_counter()
    signed = [
        bt.http_auth.sign(hotkey, method="POST", path=path, body=body, receiver_ss58=receiver)
        for _ in range(calls)
    ]
    signing = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    nonces = bt.http_auth.InMemoryNonceStore()
    for headers in signed:
        bt.http_auth.verify(
            headers,
            body,
            method="POST",
            path=path,
            self_hotkey_ss58=receiver,
            nonce_store=nonces,
        )
    verifying = (time.perf_counter() - start) / calls
    return {"sign_us": signing * 1e6, "verify_us": verifying * 1e6}


def run(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else 3
    batch = 150 if quick else 400
    paced = 40 if quick else 150
    paced_rate = 10.0
    base = WORK / "pipeline"
    redis_server = RedisServer(base / "redis", aof=False).start()
    miner_ports = [free_port() for _ in range(MINERS)]
    listing = init.initialise(
        base, [(f"bench{i}", f"http://127.0.0.1:{p}") for i, p in enumerate(miner_ports)]
    )
    wallets = base / "wallets"
    miners = [
        Server(
            f"miner-{i}",
            [
                PY,
                "-m",
                "bench.miner_host",
                "--port",
                str(port),
                "--wallet-path",
                str(wallets),
                "--wallet-name",
                init.miner_wallet(f"bench{i}"),
            ],
            port,
            health_path="/health",
        )
        for i, port in enumerate(miner_ports)
    ]
    common = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "REDIS_URL": redis_server.url,
        "RATE_LIMITS": "off",  # the gateway's per-client limits would throttle the bench
    }
    gw_port = free_port()
    gateway = Server(
        "gateway",
        [PY, "-m", "services.gateway"],
        gw_port,
        {**common, "HOST": "127.0.0.1", "PORT": str(gw_port)},
        health_path="/api/v1/health",
    )

    def validator_server(name: str) -> Server:
        port = free_port()
        return Server(
            name,
            [PY, "-m", "services.validator"],
            port,
            {
                **common,
                "VALIDATOR_PORT": str(port),
                "MINERS_FILE": str(base / "miners.json"),
                "MAX_MINERS_PER_REQUEST": str(MINERS),
                "BT_WALLET_PATH": str(wallets),
                "BT_WALLET_NAME": init.VALIDATOR_WALLET,
                "BT_WALLET_HOTKEY": "default",
                "WEBHOOK_SECRET": "bench-only-secret",
                "LB_URL": "http://127.0.0.1:9",  # summarization needs no reference service
            },
            health_path="/health",
        )

    validator = validator_server("validator")
    client = redis.Redis.from_url(redis_server.url)
    figures: dict[str, Any] = {
        "miners": len(listing),
        "miners_per_task": MINERS,
        "task_type": "summarization",
        "batch": batch,
        "rounds": rounds,
        "paced_tasks": paced,
        "paced_rate_per_s": paced_rate,
        "validator_processes": 1,
    }
    try:
        with running(*miners, gateway, validator):
            everyone = [validator, gateway, *miners]
            # Warm-up: imports, connections, miner stats rows.
            wait_final(client, list(asyncio.run(submit_batch(gateway.url, 20))), 120)
            throughput: list[dict[str, Any]] = []
            for i in range(rounds):
                cpu_before = {s.name: s.cpu() for s in everyone}
                redis_before = _redis_cpu(redis_server)
                ids = asyncio.run(submit_batch(gateway.url, batch))
                rows = wait_final(client, list(ids), 600)
                created = min(float(r["created_at"]) for r in rows.values())
                finished = max(float(r["completed_at"]) for r in rows.values())
                cpu = {s.name: s.cpu() - cpu_before[s.name] for s in everyone}
                one = {
                    "tasks_per_s": batch / (finished - created),
                    "seconds": finished - created,
                    "completed": sum(r["status"] == "completed" for r in rows.values()),
                    "cpu_ms_per_task": {
                        "validator": cpu["validator"] / batch * 1e3,
                        "gateway": cpu["gateway"] / batch * 1e3,
                        "miners (5 processes)": sum(cpu[m.name] for m in miners) / batch * 1e3,
                        "redis": (_redis_cpu(redis_server) - redis_before) / batch * 1e3,
                    },
                }
                throughput.append(one)
                log(
                    f"  round {i + 1}/{rounds}: {one['tasks_per_s']:.1f} tasks/s,"
                    f" {one['completed']}/{batch} completed, validator CPU"
                    f" {one['cpu_ms_per_task']['validator']:.2f} ms/task"
                )
            ids = asyncio.run(submit_paced(gateway.url, paced, paced_rate))
            rows = wait_final(client, list(ids), 300)
            first = asyncio.run(miner_activity(miners))
            to_first_request, queue_to_sign, sign_to_receipt, to_complete = [], [], [], []
            for task_id, sent in ids.items():
                seen = first[task_id]
                created = float(rows[task_id]["created_at"])
                to_first_request.append((seen["received"] - sent) * 1e3)
                queue_to_sign.append((seen["signed"] - created) * 1e3)
                sign_to_receipt.append((seen["received"] - seen["signed"]) * 1e3)
                to_complete.append((float(rows[task_id]["completed_at"]) - sent) * 1e3)
            log(
                f"  paced: submission to first miner request p50"
                f" {percentile(to_first_request, 50):.1f} ms,"
                f" p99 {percentile(to_first_request, 99):.1f} ms"
            )
            recorder = Recorder(validator.pid, base / "validator.pyspy.txt", rate=250)
            ids = asyncio.run(submit_batch(gateway.url, batch))
            wait_final(client, list(ids), 600)
            profile = recorder.stop()
            # Scaling: a second replica on the same Redis (same consumer group).
            two_replicas: list[float] = []
            with running(validator_server("validator-2")):
                for i in range(rounds):
                    ids = asyncio.run(submit_batch(gateway.url, batch))
                    rows = wait_final(client, list(ids), 600)
                    created = min(float(r["created_at"]) for r in rows.values())
                    finished = max(float(r["completed_at"]) for r in rows.values())
                    two_replicas.append(batch / (finished - created))
                    log(f"  2 replicas, round {i + 1}/{rounds}: {two_replicas[-1]:.1f} tasks/s")
    finally:
        client.close()
        redis_server.stop()
    signing = sign_cost(wallets, str(listing[0]["hotkey"]))

    def pcts(values: list[float]) -> dict[str, float]:
        return {"p50": percentile(values, 50), "p99": percentile(values, 99)}

    figures.update(
        {
            "tasks_per_s": spread([t["tasks_per_s"] for t in throughput]),
            "throughput_raw": throughput,
            "cpu_ms_per_task": {
                name: spread([t["cpu_ms_per_task"][name] for t in throughput])
                for name in throughput[0]["cpu_ms_per_task"]
            },
            "latency_ms": {
                "submission_to_first_miner_request": pcts(to_first_request),
                "created_to_first_signature": pcts(queue_to_sign),
                "signature_to_miner_receipt": pcts(sign_to_receipt),
                "submission_to_completed": pcts(to_complete),
            },
            "signing": signing,
            "profile": profile,
        }
    )
    tps = figures["tasks_per_s"]["median"]
    validator_ms = figures["cpu_ms_per_task"]["validator"]["median"]
    figures["signing_share_estimate"] = (
        MINERS * signing["sign_us"] / 1e3 / validator_ms if validator_ms else None
    )
    figures["targets"] = {}  # the issue sets no target here: figures and where the CPU goes
    figures["tasks_per_s_per_validator_process"] = tps
    figures["two_replicas_tasks_per_s"] = spread(two_replicas)
    figures["scaling_1_to_2_replicas"] = spread(two_replicas)["median"] / tps
    figures["summary"] = {
        "tasks/s per validator process": round(tps, 1),
        "validator CPU ms per task": round(validator_ms, 2),
        "1->2 replicas": round(figures["scaling_1_to_2_replicas"], 2),
    }
    return figures


def _redis_cpu(server: RedisServer) -> float:
    from bench.common import cpu_seconds

    assert server.process is not None
    return cpu_seconds(server.process.pid)
