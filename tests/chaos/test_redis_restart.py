"""Chaos: Redis (AOF, appendfsync everysec) is stopped mid-run, with SIGTERM and with
SIGKILL, and restarted on the same port; the services are left alone.

Invariants: the services reconnect by themselves (same processes, new tasks acknowledged
and finished after the restart); every task acknowledged more than one second before the
stop still exists and ends completed or failed with a reason. Only acknowledgements of the
last second before the stop (and any that arrived while Redis was down) may be lost.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from redis.asyncio import Redis

from devnet.stack import Ports, Stack
from devnet.workload import KINDS
from tests.chaos.conftest import (
    CHANGED,
    CHAOS_ENV,
    Submissions,
    crash_lines,
    report,
    statuses,
    submit,
    views,
    wait_all_final,
)
from tests.chaos.recovery import Kill, final_times, recovery_figures

#: Longer than the default 120 s: a run takes tens of seconds, patience adds more.
pytestmark = pytest.mark.timeout(400)

#: Submissions per second, for RUN seconds; Redis goes down STOP_AT seconds in, for DOWN.
RATE = 20.0
RUN = 12.0
STOP_AT = 5.0
DOWN = 2.0
#: AOF everysec: what may be lost is what arrived within this many seconds of the stop.
WINDOW = 1.0
PATIENCE = 90.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("chaos-redis"), Ports.free(), extra_env=CHAOS_ENV)
    running.start(timeout=90)
    yield running
    running.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_redis_restart_keeps_what_was_acknowledged(stack: Stack, sig: signal.Signals):
    assert stack.redis is not None
    pids = {name: s.process.pid for name, s in stack.services.items() if s.process}
    crashes_before = crash_lines(stack)
    record = Submissions()
    stopped_at = restarted_at = 0.0

    async def submitter(session: aiohttp.ClientSession) -> None:
        sent = []
        for i in range(int(RUN * RATE)):
            kind = KINDS[i % len(KINDS)]
            sent.append(asyncio.create_task(submit(session, stack, kind, record)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*sent)

    async def outage() -> None:
        nonlocal stopped_at, restarted_at
        await asyncio.sleep(STOP_AT)
        stopped_at = time.time()
        await asyncio.to_thread(stack.redis.stop, kill=sig == signal.SIGKILL)
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(stack.redis.start)
        restarted_at = time.time()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(submitter(session), outage())
        before = [a for a in record.acked if a.at < stopped_at - WINDOW]
        window = [a for a in record.acked if stopped_at - WINDOW <= a.at < stopped_at]
        during = [a for a in record.acked if stopped_at <= a.at < restarted_at]
        after = [a for a in record.acked if a.at >= restarted_at]
        must_finish = [a.task_id for a in before + after]
        redis = Redis.from_url(stack.redis_url)
        try:
            final = await wait_all_final(redis, must_finish, PATIENCE)
            # Those of the last second that survived must finish like any other.
            maybe = await statuses(redis, [a.task_id for a in window + during])
            kept = [t for t, s in maybe.items() if s is not None]
            final.update(await wait_all_final(redis, kept, PATIENCE))
            finished_at = await final_times(redis, [a.task_id for a in before + window])
        finally:
            await redis.aclose()
        shown = await views(session, stack, list(final))
        health = {}
        for name, path in (("validator", "/health"), ("gateway", "/api/v1/health")):
            async with session.get(stack.services[name].url + path) as resp:
                health[name] = (resp.status, await resp.json())
    alive = {name: s.process.poll() is None for name, s in stack.services.items() if s.process}
    same_pids = {name: s.process.pid for name, s in stack.services.items() if s.process} == pids
    failed = [v for v in shown.values() if isinstance(v, dict) and v["status"] == "failed"]
    lost_before = [a.task_id for a in before if a.task_id not in final]
    lost_after = [a.task_id for a in after if a.task_id not in final]
    unfinished_kept = [t for t in kept if t not in final]
    # Recovery: from the stop to the end of each task acknowledged before it and not yet
    # final then (the tasks the outage held up; the DOWN seconds are included).
    acked_before_stop = [a.task_id for a in before + window]
    recovery = recovery_figures([Kill(stopped_at, 0, acked_before_stop)], finished_at)
    report(
        f"redis-restart-{sig.name.lower()}",
        {
            "changed": CHANGED,
            "signal": sig.name,
            "submitted": int(RUN * RATE),
            "acked": len(record.acked),
            "refused": dict(record.refused),
            "acked_before_window": len(before),
            "acked_last_second": len(window),
            "acked_while_down": len(during),
            "acked_after_restart": len(after),
            "lost_before_window": len(lost_before),
            "lost_last_second": sum(s is None for s in maybe.values()),
            "lost_after_restart": len(lost_after),
            "last_second_kept_unfinished": len(unfinished_kept),
            "held_at_stop": sum(t >= stopped_at for t in finished_at.values()),
            "recovery_median_s": recovery["recovery_median_s"],
            "recovery_max_s": recovery["recovery_max_s"],
            "completed": sum(s == "completed" for s in final.values()),
            "failed": len(failed),
            "failure_reasons": dict(Counter(str(v["error"]) for v in failed)),
            "services_restarted": sum(not ok for ok in alive.values()) + (not same_pids),
            "crash_log_lines": crash_lines(stack) - crashes_before,
        },
    )
    assert all(alive.values()) and same_pids, alive
    assert crash_lines(stack) == crashes_before
    assert len(before) > 0 and len(after) > 0  # the gateway took work again by itself
    assert lost_before == [] and lost_after == [] and unfinished_kept == []
    assert health["gateway"][0] == 200 and health["validator"][0] == 200, health
    assert health["validator"][1]["dead_loops"] == [], health
    assert all(isinstance(v, dict) for v in shown.values())
    assert all(v["error"] for v in failed)
