"""Scenario 2: small transcription requests at 32 concurrent connections, direct, through
the lb and through nginx.

The load generator is wrk (C, one thread, keep-alive connections) with a Lua script that
POSTs the same multipart body: an 8 KB WAV and ``response_format=json`` to a simulated
instance that answers at once (``--speed 0``). Two loads:

- saturated: 32 connections sending back to back; requests per second and latency at the
  most the machine can do. On two cores the generator, the proxy and the instance share
  the CPU, so a proxy's latency here is mostly queueing behind its own CPU use.
- paced: the same 32 connections, each pausing PACED_DELAY_MS between requests (well
  below saturation), so latency shows the time a request spends in the proxy rather than
  waiting for a core. The "adds at most 1 ms at p50" target is read here.

CPU per request of each server comes from /proc (psutil) around each wrk run.
"""

from __future__ import annotations

from typing import Any

from bench.common import WORK, Server, lb, log, running, spread, whisperx
from bench.tools import Nginx, wrk_post
from devnet.audio import synthesize

CONNECTIONS = 32
PACED_DELAY_MS = 100
TARGET_ADDED_P50_MS = 1.0
BOUNDARY = "benchboundary7f3a"


def request_body() -> tuple[str, int]:
    """Write the multipart body to var/bench/small.body; its path and size."""
    wav = synthesize("small request", 0.25)
    body = (
        (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="response_format"\r\n\r\n'
            f"json\r\n--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="small.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + wav
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    path = WORK / "small.body"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return str(path), len(body)


def measure(
    target: Server, watched: list[Server], seconds: float, delay_ms: float = 0.0
) -> dict[str, Any]:
    """One wrk run against ``target``; CPU per request of every watched server."""
    before = {s.name: s.cpu() for s in watched}
    figures = wrk_post(
        target.url + "/v1/audio/transcriptions",
        WORK / "small.body",
        f"multipart/form-data; boundary={BOUNDARY}",
        connections=CONNECTIONS,
        seconds=seconds,
        delay_ms=delay_ms,
    )
    requests = max(1, figures["requests"])
    figures["cpu_us_per_request"] = {
        s.name: (s.cpu() - before[s.name]) / requests * 1e6 for s in watched
    }
    figures["wrk_cpu_us_per_request"] = figures["wrk_cpu_s"] / requests * 1e6
    if figures["errors"]:
        log(f"  warning: {figures['errors']} errors against {target.name}")
    return figures


def run(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else 3
    seconds = 3.0 if quick else 5.0
    _, body_bytes = request_body()
    instance = whisperx("instance", "--concurrency", "4")
    with running(instance):
        balancer = lb([instance])
        nginx = Nginx([instance])
        with running(balancer, nginx):
            watched = [instance, balancer, nginx]
            targets = [("direct", instance), ("lb", balancer), ("nginx", nginx)]
            for _, target in targets:  # warm-up: connections, imports, caches
                measure(target, watched, 1.0)
            results: dict[str, dict[str, list[dict[str, Any]]]] = {
                mode: {name: [] for name, _ in targets} for mode in ("saturated", "paced")
            }
            for i in range(rounds):
                order = targets[i % 3 :] + targets[: i % 3]
                for mode, delay in (("saturated", 0.0), ("paced", PACED_DELAY_MS)):
                    for name, target in order:
                        results[mode][name].append(measure(target, watched, seconds, delay))
                    log(
                        f"  round {i + 1}/{rounds} {mode}: "
                        + ", ".join(
                            f"{n} {results[mode][n][-1]['rps']:.0f} req/s"
                            f" p50 {results[mode][n][-1]['p50_ms']:.2f} ms"
                            for n, _ in targets
                        )
                    )
    figures: dict[str, Any] = {
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "rounds": rounds,
        "paced_delay_ms": PACED_DELAY_MS,
        "body_bytes": body_bytes,
        "generator": "wrk -t1 -c32, Lua POST script",
    }
    for mode, per_target in results.items():
        summary: dict[str, Any] = {}
        for name, runs in per_target.items():
            proxy = {"direct": None, "lb": "lb", "nginx": "nginx"}[name]
            summary[name] = {
                "rps": spread([r["rps"] for r in runs]),
                "p50_ms": spread([r["p50_ms"] for r in runs]),
                "p99_ms": spread([r["p99_ms"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
                "instance_cpu_us_per_request": spread(
                    [r["cpu_us_per_request"]["instance"] for r in runs]
                ),
                "proxy_cpu_us_per_request": spread([r["cpu_us_per_request"][proxy] for r in runs])
                if proxy
                else None,
                "wrk_cpu_us_per_request": spread([r["wrk_cpu_us_per_request"] for r in runs]),
                "raw": runs,
            }
        med = {name: s["p50_ms"]["median"] for name, s in summary.items()}
        rps = {name: s["rps"]["median"] for name, s in summary.items()}
        summary["lb_added_p50_ms"] = med["lb"] - med["direct"]
        summary["nginx_added_p50_ms"] = med["nginx"] - med["direct"]
        summary["ratio_lb_nginx_p50"] = med["lb"] / med["nginx"]
        summary["ratio_lb_nginx_rps"] = rps["lb"] / rps["nginx"]
        figures[mode] = summary
    figures["targets"] = {
        "lb_adds_at_most_1ms_p50_paced": figures["paced"]["lb_added_p50_ms"] <= TARGET_ADDED_P50_MS,
        "lb_adds_at_most_1ms_p50_saturated": figures["saturated"]["lb_added_p50_ms"]
        <= TARGET_ADDED_P50_MS,
    }
    return figures
