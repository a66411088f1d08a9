"""Scenario 4: gateway ingest, as ratios measured side by side in the same rounds.

Three servers run at once on loopback, each its own process:

- ``bare``: a bare aiohttp handler that reads the body and answers 202 JSON (bench/bare.py);
- ``gateway``: ``python -m services.gateway`` at the shipped defaults (production mode,
  JSON access logs at INFO to a file, Redis with AOF everysec), except the submit rate
  limit, raised to :data:`HIGH_LIMIT`: the limiter stays on and runs its Redis script for
  every request, but one wrk client address is never refused (the default, 600/min, would
  answer almost every request 429);
- ``gateway-default-limits``: the same with the shipped limits untouched, so a single
  client is mostly answered 429 (the rate-limited path).

Every round runs the same wrk command (one thread, 32 keep-alive connections) against
``bare`` and ``gateway`` back to back, in alternating order, then against
``gateway-default-limits``. Each ratio is taken within one round; the figures are the
medians over the rounds. Absolute figures (submissions/s, µs) are information: they move
with the machine and with whatever else it runs.

A last run of each gateway with py-spy attached (not counted above) shows where the CPU of
a submission and of a 429 goes.
"""

from __future__ import annotations

import json
import os
import statistics
from typing import Any

import redis

from bench.common import PY, WORK, Server, cpu_seconds, log, running, spread
from bench.profile import GATEWAY_CATEGORIES, Recorder
from bench.tools import wrk_post
from devnet.redis_server import RedisServer, free_port

CONNECTIONS = 32
#: The submit limit of the "rate limiting on, never refusing" gateway: 999,999,999 per
#: second is far above anything one process can take, so no request is refused.
HIGH_LIMIT = "submit=999999999/s"
TARGET_BARE_RATIO = 0.4
TARGET_429_CPU_RATIO = 0.5
JSON_TYPE = "application/json"
TTS_PATH = "/api/v1/tts"


def tts_body() -> str:
    WORK.mkdir(parents=True, exist_ok=True)
    tts = WORK / "tts.json"
    tts.write_text(
        json.dumps(
            {
                "text": "Hello from the benchmark: please read this sentence aloud.",
                "source_language": "en",
                "priority": "normal",
            }
        )
    )
    return str(tts)


def gateway(name: str, redis_url: str, **env: str) -> Server:
    """``python -m services.gateway`` in production mode with ``env`` on top."""
    port = free_port()
    settings = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": redis_url,
        **env,
    }
    argv = [PY, "-m", "services.gateway"]
    return Server(name, argv, port, settings, health_path="/api/v1/health")


def bare() -> Server:
    port = free_port()
    argv = [PY, "-m", "bench.bare", "--port", str(port)]
    return Server("bare", argv, port, health_path="/health")


def measure(server: Server, body: str, seconds: float, redis_pid: int) -> dict[str, Any]:
    """One wrk run; CPU per request of the server and of Redis, from /proc."""
    cpu, redis_cpu = server.cpu(), cpu_seconds(redis_pid)
    one = wrk_post(server.url + TTS_PATH, body, JSON_TYPE, connections=CONNECTIONS, seconds=seconds)
    requests = max(1, one["requests"])
    one["cpu_s"] = server.cpu() - cpu
    one["cpu_us_per_request"] = one["cpu_s"] / requests * 1e6
    one["redis_cpu_us_per_request"] = (cpu_seconds(redis_pid) - redis_cpu) / requests * 1e6
    # wrk counts every non-2xx/3xx answer as a status error: here, the 429s.
    one["refused"] = one["status_errors"]
    one["accepted"] = one["requests"] - one["status_errors"]
    return one


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: spread([r[key] for r in runs])
        for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "redis_cpu_us_per_request")
    }


def run(quick: bool) -> dict[str, Any]:
    rounds = 2 if quick else 5
    seconds = 3.0 if quick else 5.0
    body = tts_body()
    store = RedisServer(WORK / "redis-ingest", aof=True).start()
    assert store.process is not None
    redis_pid = store.process.pid
    client = redis.Redis.from_url(store.url)
    servers = {
        "bare": bare(),
        "gateway": gateway("gateway", store.url, RATE_LIMITS=HIGH_LIMIT),
        # Its own database: the buckets are per address, and the other gateway's huge limit
        # would refill the shared bucket to this one's capacity on every call.
        "limited": gateway("gateway-default-limits", store.url.rsplit("/", 1)[0] + "/1"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    ratios: dict[str, list[float]] = {"rps": [], "cpu": [], "cpu_429": []}
    profiles: dict[str, Any] = {}
    try:
        with running(*servers.values()):
            for server in servers.values():  # warm-up; drains the limited gateway's bucket
                wrk_post(server.url + TTS_PATH, body, JSON_TYPE, connections=CONNECTIONS, seconds=1)
            client.flushall()
            wrk_post(servers["limited"].url + TTS_PATH, body, JSON_TYPE, connections=4, seconds=1)
            for i in range(rounds):
                pair = ["bare", "gateway"] if i % 2 == 0 else ["gateway", "bare"]
                one = {name: measure(servers[name], body, seconds, redis_pid) for name in pair}
                one["limited"] = measure(servers["limited"], body, seconds, redis_pid)
                for name, figures in one.items():
                    runs[name].append(figures)
                gw, base, lim = one["gateway"], one["bare"], one["limited"]
                ratios["rps"].append(gw["rps"] / base["rps"])
                ratios["cpu"].append(gw["cpu_us_per_request"] / base["cpu_us_per_request"])
                # The few requests the limited gateway still accepted cost what an accepted
                # one costs this round; the rest of its CPU is the 429s'.
                accepted_cpu = lim["accepted"] * gw["cpu_us_per_request"] / 1e6
                per_429 = max(0.0, lim["cpu_s"] - accepted_cpu) / max(1, lim["refused"]) * 1e6
                lim["cpu_us_per_429"] = per_429
                ratios["cpu_429"].append(per_429 / gw["cpu_us_per_request"])
                log(
                    f"  round {i + 1}/{rounds} ({' then '.join(pair)}): bare {base['rps']:.0f}/s"
                    f" {base['cpu_us_per_request']:.0f} µs; gateway {gw['rps']:.0f}/s"
                    f" {gw['cpu_us_per_request']:.0f} µs, errors {gw['errors']};"
                    f" gateway/bare {ratios['rps'][-1]:.2f}x; 429 {per_429:.0f} µs"
                    f" ({lim['refused']} of {lim['requests']} refused),"
                    f" 429/accepted CPU {ratios['cpu_429'][-1]:.2f}x"
                )
            for name in ("gateway", "limited"):
                server = servers[name]
                recorder = Recorder(server.pid, WORK / f"{server.name}.pyspy.txt", rate=250)
                measure(server, body, seconds, redis_pid)
                profiles[name] = recorder.stop(GATEWAY_CATEGORIES)
            stored = client.zcard("audio:tasks:all")
    finally:
        client.close()
        store.stop()
    medians = {name: statistics.median(values) for name, values in ratios.items()}
    limited = runs["limited"]
    figures: dict[str, Any] = {
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "load_average_at_start": list(os.getloadavg()),
        "gateway_settings": {
            "ENVIRONMENT": "production",
            "LOG_LEVEL": "INFO",
            "RATE_LIMITS": HIGH_LIMIT,
            "redis": "redis-server with appendonly yes, appendfsync everysec",
        },
        "why_rate_limit": "the limiter stays on (one Redis script per request) with a submit"
        f" limit of {HIGH_LIMIT}, too high to refuse one wrk client; the shipped 600/min"
        " would answer almost every request 429",
        "bare": _summary(runs["bare"]),
        "gateway": _summary(runs["gateway"]),
        "limited": {
            **_summary(limited),
            "cpu_us_per_429": spread([r["cpu_us_per_429"] for r in limited]),
            "refused_share": spread([r["refused"] / max(1, r["requests"]) for r in limited]),
        },
        "gateway_errors": sum(r["errors"] for r in runs["gateway"]),
        "stored_tasks": stored,
        "ratios": {
            "gateway_over_bare_rps": spread(ratios["rps"]),
            "gateway_over_bare_cpu_per_request": spread(ratios["cpu"]),
            "cpu_429_over_accepted": spread(ratios["cpu_429"]),
        },
        "profile": profiles,
        "raw": runs,
    }
    figures["targets"] = {
        "gateway_at_least_0.4x_bare": medians["rps"] >= TARGET_BARE_RATIO,
        "429_at_most_0.5x_accepted_cpu": medians["cpu_429"] <= TARGET_429_CPU_RATIO,
    }
    figures["summary"] = {
        "gateway/bare rps": round(medians["rps"], 3),
        "429/accepted cpu": round(medians["cpu_429"], 3),
        **figures["targets"],
    }
    return figures
