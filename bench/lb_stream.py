"""Scenario 1: a 1 GiB multipart upload to a sink instance, directly, through the lb and
through nginx as the same least-connection streaming proxy.

The client is curl (as in docs/lb.md): it costs little CPU, so on two cores the client,
the proxy and the sink compete as little as they can. Rounds alternate the order of the
three paths; each ratio is taken within one round, and the median over the rounds is the
figure. The lb's CPU and peak RSS are read from /proc around the whole series.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.common import (
    MIB,
    WORK,
    Server,
    lb,
    log,
    run_timed,
    running,
    spread,
    whisperx,
)
from bench.tools import Nginx

SIZE = 1 << 30
TARGET_RATIO_DIRECT = 1.6
TARGET_RSS_GROWTH_MIB = 64


def upload_file() -> Path:
    """The 1 GiB upload, random bytes, made once and kept in var/bench/."""
    path = WORK / "upload-1g.bin"
    if not path.exists() or path.stat().st_size != SIZE:
        log("  writing the 1 GiB upload file")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for _ in range(SIZE // (16 * MIB)):
                f.write(os.urandom(16 * MIB))
    # Read it once so that every upload comes from the page cache.
    with path.open("rb") as f:
        while f.read(16 * MIB):
            pass
    return path


def curl_upload(url: str, path: Path) -> dict[str, float]:
    """One upload with curl; wall and CPU from wait4."""
    argv = [
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
        "-F", "response_format=json", "-F", f"file=@{path}",
        f"{url}/v1/audio/transcriptions",
    ]  # fmt: skip
    timed = run_timed(argv, timeout=300)
    status = timed.stdout.decode().strip()
    if timed.returncode != 0 or status != "200":
        raise RuntimeError(f"upload to {url} failed: curl {timed.returncode}, HTTP {status}")
    return {"seconds": timed.wall, "client_cpu_s": timed.cpu}


def run(quick: bool) -> dict[str, Any]:
    rounds = 2 if quick else 5
    load = os.getloadavg()
    path = upload_file()
    sink = whisperx("sink", "--discard-audio")
    with running(sink):
        balancer = lb([sink])
        nginx = Nginx([sink])
        with running(balancer, nginx):
            # One small request through each proxy first: connections and lazy imports.
            tiny = WORK / "tiny.bin"
            tiny.write_bytes(b"x" * 1024)
            for target in (sink, balancer, nginx):
                curl_upload(target.url, tiny)
            lb_rss_before = balancer.rss()
            nginx_rss_before = nginx.rss()
            cpu_before = {s.name: s.cpu() for s in (sink, balancer, nginx)}
            paths: list[tuple[str, Server]] = [
                ("direct", sink),
                ("lb", balancer),
                ("nginx", nginx),
            ]
            times: dict[str, list[float]] = {name: [] for name, _ in paths}
            client_cpu: dict[str, list[float]] = {name: [] for name, _ in paths}
            proxy_cpu: dict[str, list[float]] = {"lb": [], "nginx": []}
            for i in range(rounds):
                order = paths[i % 3 :] + paths[: i % 3]
                for name, target in order:
                    before = target.cpu()
                    one = curl_upload(target.url, path)
                    times[name].append(one["seconds"])
                    client_cpu[name].append(one["client_cpu_s"])
                    if name in proxy_cpu:
                        proxy_cpu[name].append(target.cpu() - before)
                log(
                    f"  round {i + 1}/{rounds}: "
                    + ", ".join(f"{n} {times[n][-1]:.3f} s" for n, _ in paths)
                )
            lb_peak = balancer.peak_rss()
            nginx_peak = nginx.peak_rss()
            cpu_total = {s.name: s.cpu() - cpu_before[s.name] for s in (sink, balancer, nginx)}
    # Each ratio is taken within a round (the three paths back to back), then the median.
    per_round = {
        "lb_direct": [lb / d for lb, d in zip(times["lb"], times["direct"], strict=True)],
        "lb_nginx": [lb / n for lb, n in zip(times["lb"], times["nginx"], strict=True)],
        "nginx_direct": [n / d for n, d in zip(times["nginx"], times["direct"], strict=True)],
    }
    gib = SIZE / (1 << 30)
    figures = {
        "upload_bytes": SIZE,
        "rounds": rounds,
        "client": "curl -F (multipart), Expect: disabled",
        "seconds": {name: spread(values) for name, values in times.items()},
        "throughput_mib_s": {
            name: spread([SIZE / MIB / t for t in values]) for name, values in times.items()
        },
        "client_cpu_s": {name: spread(values) for name, values in client_cpu.items()},
        "proxy_cpu_s_per_gib": {
            name: spread([c / gib for c in values]) for name, values in proxy_cpu.items()
        },
        "cpu_s_whole_series": cpu_total,
        "lb_rss_mib": {
            "before": lb_rss_before,
            "peak": lb_peak,
            "growth": lb_peak - lb_rss_before,
        },
        "nginx_rss_mib": {
            "before": nginx_rss_before,
            "peak": nginx_peak,
            "growth": nginx_peak - nginx_rss_before,
        },
        "ratios_per_round": {name: spread(values) for name, values in per_round.items()},
        "ratio_lb_direct": spread(per_round["lb_direct"])["median"],
        "ratio_lb_nginx": spread(per_round["lb_nginx"])["median"],
        "ratio_nginx_direct": spread(per_round["nginx_direct"])["median"],
        "load_average_at_start": list(load),
    }
    figures["targets"] = {
        "lb_time_at_most_1.6x_direct": figures["ratio_lb_direct"] <= TARGET_RATIO_DIRECT,
        "lb_no_slower_than_nginx": figures["ratio_lb_nginx"] <= 1.0,
        "lb_rss_growth_under_64_mib": figures["lb_rss_mib"]["growth"] < TARGET_RSS_GROWTH_MIB,
    }
    figures["summary"] = {
        "lb/direct": round(figures["ratio_lb_direct"], 3),
        "lb/nginx": round(figures["ratio_lb_nginx"], 3),
        "lb RSS growth MiB": round(figures["lb_rss_mib"]["growth"], 1),
        **figures["targets"],
    }
    return figures
