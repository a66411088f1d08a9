"""Scenario 3: routing quality. The same bursty arrival of 200 jobs, routed three ways:

- lb: every job sent to the lb (least load: polled outside jobs + its own in-flight jobs);
- round_robin: the client cycles over the instances;
- seed: the seed's algorithm, least ``active_jobs`` from the last poll of every instance's
  /health, polled every 30 s, ties broken at random (the kindest reading of it).

The two baselines route client-side, straight to the instances: they skip the proxy hop
the lb adds, which can only flatter them.

Four simulated WhisperX instances with 2 slots each; two of them carry one outside job for
good (``--outside-jobs 1``) that only their /health shows, so they have half the capacity.
Job times of 1 to 5 s are scaled down uniformly by SCALE (0.2 to 1 s) to keep the run
short: each job is a WAV of 1 to 5 s of audio and the instances run at ``--speed SCALE``.
Arrivals come in bursts of 10 to 30 jobs with exponential gaps sized for about 70 % of the
free capacity, from a fixed seed, so every router gets the same jobs at the same times.
Time to completion runs from a job's scheduled arrival to its answer.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from bench.common import Server, lb, log, percentile, running, spread, whisperx
from devnet.audio import synthesize

JOBS = 200
SCALE = 0.2
SLOTS = 2
OUTSIDE = (0, 0, 1, 1)  # outside jobs per instance
LOAD = 0.7
SEED_POLL_INTERVAL = 30.0
SEED = 8
TARGET_IMPROVEMENT = 0.20


def schedule(rng: random.Random) -> list[tuple[float, float]]:
    """(arrival offset in s, audio seconds) for every job, in bursts."""
    free_slots = sum(SLOTS - o for o in OUTSIDE)
    mean_job = 3.0 * SCALE
    rate = LOAD * free_slots / mean_job  # jobs per second
    jobs: list[tuple[float, float]] = []
    at = 0.0
    while len(jobs) < JOBS:
        burst = min(rng.randint(10, 30), JOBS - len(jobs))
        jobs.extend((at, rng.uniform(1.0, 5.0)) for _ in range(burst))
        at += rng.expovariate(rate / 20)  # mean burst 20 jobs
    return jobs


class SeedRouter:
    """Least active_jobs from the last poll; polls every SEED_POLL_INTERVAL seconds."""

    def __init__(self, session: aiohttp.ClientSession, urls: list[str]) -> None:
        self.session = session
        self.urls = urls
        self.polled = dict.fromkeys(urls, 0)
        self.rng = random.Random(SEED)

    async def poll(self) -> None:
        for url in self.urls:
            async with self.session.get(url + "/health") as resp:
                self.polled[url] = (await resp.json())["active_jobs"]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SEED_POLL_INTERVAL)
            await self.poll()

    def __call__(self) -> str:
        least = min(self.polled.values())
        return self.rng.choice([u for u, n in self.polled.items() if n == least])


def form(audio: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("response_format", "json")
    data.add_field("file", audio, filename="job.wav", content_type="audio/wav")
    return data


async def one_router(
    name: str, instances: list[Server], balancer: Server, jobs: list[tuple[float, bytes]]
) -> dict[str, Any]:
    """Send every job at its time through ``name``'s routing; times to completion."""
    urls = [s.url for s in instances]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        poller = None
        route: Callable[[], str]
        if name == "lb":
            route = lambda: balancer.url  # noqa: E731
        elif name == "round_robin":
            cycle = itertools.cycle(urls)
            route = lambda: next(cycle)  # noqa: E731
        else:
            seed = SeedRouter(session, urls)
            await seed.poll()
            poller = asyncio.create_task(seed.run())
            route = seed
        sent_to: Counter[str] = Counter()
        start = time.perf_counter() + 0.2

        async def job(at: float, audio: bytes) -> float:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            url = route()
            sent_to[url] += 1
            async with session.post(url + "/v1/audio/transcriptions", data=form(audio)) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{name}: HTTP {r.status} from {url}")
            return time.perf_counter() - (start + at)

        try:
            async with asyncio.timeout(300):
                times = await asyncio.gather(*(job(at, audio) for at, audio in jobs))
        finally:
            if poller is not None:
                poller.cancel()
    return {
        "mean_s": sum(times) / len(times),
        "p50_s": percentile(times, 50),
        "p95_s": percentile(times, 95),
        "max_s": max(times),
        "jobs_per_instance": [sent_to[u] for u in urls] if name != "lb" else None,
    }


async def lb_distribution(balancer: Server, instances: list[Server]) -> list[int]:
    """Requests the lb sent to each instance so far, from its /metrics."""
    async with aiohttp.ClientSession() as session:
        async with session.get(balancer.url + "/metrics") as resp:
            text = await resp.text()
    counts = dict.fromkeys((s.url for s in instances), 0)
    for line in text.splitlines():
        if line.startswith("lb_requests_total{") and 'outcome="ok"' in line:
            for url in counts:
                if f'instance="{url}"' in line:
                    counts[url] = int(float(line.rsplit(" ", 1)[1]))
    return list(counts.values())


def run(quick: bool) -> dict[str, Any]:
    rounds = 1 if quick else 2
    rng = random.Random(SEED)
    plan = schedule(rng)
    # The simulated instances read the embedded text; audio without any gets 422 at once.
    jobs = [(at, synthesize("routing benchmark job", seconds)) for at, seconds in plan]
    instances = [
        whisperx(
            f"whisperx-{i}",
            "--concurrency",
            str(SLOTS),
            "--speed",
            str(SCALE),
            "--outside-jobs",
            str(outside),
        )
        for i, outside in enumerate(OUTSIDE, start=1)
    ]
    routers = ["lb", "round_robin", "seed"]
    results: dict[str, list[dict[str, Any]]] = {r: [] for r in routers}
    with running(*instances):
        for i in range(rounds):
            for name in routers[i % 3 :] + routers[: i % 3]:
                # A fresh lb per run: its first health round happens at start-up, as the
                # seed router's first poll does, so neither starts from a stale poll that
                # saw the previous router's backlog.
                balancer = lb(instances)
                with running(balancer):
                    one = asyncio.run(one_router(name, instances, balancer, jobs))
                    if name == "lb":
                        one["jobs_per_instance"] = asyncio.run(lb_distribution(balancer, instances))
                results[name].append(one)
                log(
                    f"  round {i + 1}/{rounds} {name}: mean {one['mean_s']:.2f} s,"
                    f" p95 {one['p95_s']:.2f} s, per instance {one['jobs_per_instance']}"
                )
    summary = {
        name: {
            "mean_s": spread([r["mean_s"] for r in runs]),
            "p95_s": spread([r["p95_s"] for r in runs]),
            "p50_s": spread([r["p50_s"] for r in runs]),
            "raw": runs,
        }
        for name, runs in results.items()
    }
    best_baseline = min(
        summary["round_robin"]["p95_s"]["median"], summary["seed"]["p95_s"]["median"]
    )
    improvement = 1 - summary["lb"]["p95_s"]["median"] / best_baseline
    return {
        "jobs": JOBS,
        "rounds": rounds,
        "scale": SCALE,
        "slots_per_instance": SLOTS,
        "outside_jobs": list(OUTSIDE),
        "offered_load": LOAD,
        "arrival_span_s": plan[-1][0],
        "routers": summary,
        "lb_p95_improvement_over_best_baseline": improvement,
        "targets": {"lb_p95_at_least_20pct_lower": improvement >= TARGET_IMPROVEMENT},
    }
