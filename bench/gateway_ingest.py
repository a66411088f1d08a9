"""Scenario 4: gateway ingest. Submissions per second and latency for TTS JSON bodies and for
1 MB transcription uploads, against the embedded redis-server, with one process
(``python -m services.gateway``) and with N worker processes (gunicorn with
services/gateway/gunicorn_conf.py, N = cores).

wrk drives 32 keep-alive connections; Redis is flushed after every run, so each run
starts from an empty database. The gateway runs in production mode (JSON logs at INFO, to
a file), with rate limits off (one client address would be throttled). Redis runs without
AOF: the figures are the gateway's, not the disk's.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis

from bench.common import (
    PY,
    WORK,
    Server,
    cpu_seconds,
    log,
    running,
    spread,
)
from bench.tools import wrk_post
from devnet.audio import synthesize
from devnet.redis_server import RedisServer, free_port

CONNECTIONS = 32
TARGET_JSON_PER_PROCESS = 3000
BOUNDARY = "benchboundary5c1e"
JSON_TYPE = "application/json"


def bodies() -> dict[str, tuple[str, str, str]]:
    """kind -> (path, body file, content type)."""
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
    wav = synthesize("one megabyte upload", 1_000_000 / 32_000)  # 16 kHz, 16-bit mono
    upload = WORK / "upload-1m.body"
    upload.write_bytes(
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="source_language"\r\n\r\n'
            f"en\r\n--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="priority"\r\n\r\n'
            f"normal\r\n--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="audio_file"; filename="upload.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return {
        "tts_json": ("/api/v1/tts", str(tts), JSON_TYPE),
        "transcription_1mb": (
            "/api/v1/transcription",
            str(upload),
            f"multipart/form-data; boundary={BOUNDARY}",
        ),
    }


def gateway(redis_url: str, workers: int) -> Server:
    """One process (workers == 0) or gunicorn with ``workers`` workers."""
    port = free_port()
    env = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "REDIS_URL": redis_url,
        # Ingest capacity, not policy: per-client rate limits (issue 7) would answer 429.
        "RATE_LIMITS": "off",
    }
    if workers == 0:
        argv = [PY, "-m", "services.gateway"]
        name = "gateway"
    else:
        env["WORKERS"] = str(workers)
        argv = [
            PY, "-m", "gunicorn", "-c", "python:services.gateway.gunicorn_conf",
            "services.gateway.app:gunicorn_app",
        ]  # fmt: skip
        name = f"gateway-gunicorn-{workers}"
    return Server(name, argv, port, env, health_path="/api/v1/health")


def run(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else 3
    seconds = 3.0 if quick else 5.0
    n = os.cpu_count() or 2
    kinds = bodies()
    figures: dict[str, Any] = {
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "processes_n": n,
        "upload_bytes": os.path.getsize(kinds["transcription_1mb"][1]),
        "configs": {},
    }
    server = RedisServer(WORK / "redis-ingest", aof=False).start()
    client = redis.Redis.from_url(server.url)
    try:
        for label, workers in (("1 process", 0), (f"{n} processes", n)):
            gw = gateway(server.url, workers)
            results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            with running(gw):
                for path, body, ctype in kinds.values():  # warm-up
                    wrk_post(gw.url + path, body, ctype, connections=CONNECTIONS, seconds=1.0)
                client.flushall()
                for i in range(rounds):
                    for kind, (path, body, ctype) in kinds.items():
                        gw_cpu, redis_cpu = gw.cpu(), _cpu_redis(server)
                        one = wrk_post(
                            gw.url + path, body, ctype, connections=CONNECTIONS, seconds=seconds
                        )
                        requests = max(1, one["requests"])
                        one["gateway_cpu_us_per_request"] = (gw.cpu() - gw_cpu) / requests * 1e6
                        one["redis_cpu_us_per_request"] = (
                            (_cpu_redis(server) - redis_cpu) / requests * 1e6
                        )
                        one["stored"] = client.zcard("audio:tasks:all")
                        client.flushall()
                        results[kind].append(one)
                        log(
                            f"  {label} round {i + 1}/{rounds} {kind}: {one['rps']:.0f}/s,"
                            f" p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms,"
                            f" errors {one['errors']}"
                        )
                peak = gw.peak_rss()
            processes = max(1, workers)
            figures["configs"][label] = {
                "processes": processes,
                "gateway_peak_rss_mib": peak,
                **{
                    kind: {
                        "rps": spread([r["rps"] for r in runs]),
                        "rps_per_process": spread([r["rps"] / processes for r in runs]),
                        "p50_ms": spread([r["p50_ms"] for r in runs]),
                        "p99_ms": spread([r["p99_ms"] for r in runs]),
                        "errors": sum(r["errors"] for r in runs),
                        "gateway_cpu_us_per_request": spread(
                            [r["gateway_cpu_us_per_request"] for r in runs]
                        ),
                        "redis_cpu_us_per_request": spread(
                            [r["redis_cpu_us_per_request"] for r in runs]
                        ),
                        "raw": runs,
                    }
                    for kind, runs in results.items()
                },
            }
    finally:
        client.close()
        server.stop()
    one_process = figures["configs"]["1 process"]["tts_json"]["rps_per_process"]["median"]
    figures["targets"] = {
        "at_least_3000_json_per_s_per_process": one_process >= TARGET_JSON_PER_PROCESS
    }
    return figures


def _cpu_redis(server: RedisServer) -> float:
    assert server.process is not None
    return cpu_seconds(server.process.pid)
