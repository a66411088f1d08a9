"""Chaos: 500 tasks through gateway -> validator -> miners while the two validator replicas
are SIGKILLed in turn every few seconds and restarted, at the shipped recovery defaults.

Invariants: every acknowledged task ends completed, or failed with a reason; none is lost;
none completes twice; every task settles within 30 s of the last kill; every task's webhook
arrives at least once, signed, with a webhook-id that stays the same on redelivery. The
figures include the recovery time: from each kill to the end of each task the killed
replica held.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from devnet.stack import Ports, Stack
from devnet.workload import KINDS
from shared import keys
from shared.tasks import PRIORITY_ORDER
from tests.chaos.conftest import (
    CHANGED,
    CHAOS_ENV,
    Submissions,
    WebhookReceiver,
    count_log_lines,
    crash_lines,
    log_events,
    report,
    submit,
    views,
    wait_all_final,
)
from tests.chaos.recovery import Kill, final_times, kill_holding, recovery_figures

#: Longer than the default 120 s: a run takes tens of seconds, patience adds more.
pytestmark = pytest.mark.timeout(400)

TASKS = 500
#: Seconds between two kills; the replicas are killed in turn, so each lives about twice that.
KILL_EVERY = 4.0
#: Submissions per second: spread over the first part of the run, so kills meet every stage.
SUBMIT_RATE = 25.0
#: Kills stop once every task is final or after this many seconds, whichever comes first.
CHAOS_SECONDS = 60.0
#: After the kills stop, how long the survivors get to finish; the goal is 30 s.
PATIENCE = 90.0
SETTLE_GOAL = 30.0
#: Webhooks refused once come back after WEBHOOK_RETRY_BASE (30 s), a killed sender's lease
#: after WEBHOOK_TIMEOUT + 5 s (15 s): the defaults, so the wait for them is long.
WEBHOOK_PATIENCE = 150.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, Ports.free(), extra_env=CHAOS_ENV)
    running.start(timeout=90)
    yield running
    running.stop()


async def test_validator_kills_lose_nothing_and_complete_nothing_twice(stack, aiohttp_server):
    receiver = WebhookReceiver(stack.webhook_secret, refuse_first_every=5)
    hook_server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    callback = str(hook_server.make_url("/hook"))
    stack.add_replica("validator")
    replicas = ["validator", "validator-2"]
    redis = Redis.from_url(stack.redis_url)
    record = Submissions()
    kills: list[Kill] = []
    all_final = asyncio.Event()

    async def submitter(session: aiohttp.ClientSession) -> None:
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with gate:
                await submit(session, stack, KINDS[i % len(KINDS)], record, callback_url=callback)

        pending = []
        for i in range(TASKS):
            pending.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / SUBMIT_RATE)
        await asyncio.gather(*pending)

    async def killer() -> None:
        deadline = time.monotonic() + CHAOS_SECONDS
        while time.monotonic() < deadline and not all_final.is_set():
            await asyncio.sleep(KILL_EVERY)
            name = replicas[len(kills) % len(replicas)]
            kills.append(await kill_holding(redis, stack, name))
            stack.spawn(stack.services[name])

    async def watcher(submitting: asyncio.Task[None], killing: asyncio.Task[None]) -> None:
        """Ends the kills once every task is final (or when the kills end anyway)."""
        while not killing.done():
            await asyncio.sleep(1)
            if submitting.done():
                ids = [a.task_id for a in record.acked]
                if len(await wait_all_final(redis, ids, 0)) == len(ids):
                    all_final.set()
                    return

    try:
        async with aiohttp.ClientSession() as session:
            submitting = asyncio.create_task(submitter(session))
            killing = asyncio.create_task(killer())
            await asyncio.gather(submitting, killing, watcher(submitting, killing))
            ids = [a.task_id for a in record.acked]
            final = await wait_all_final(redis, ids, PATIENCE)
            finished_at = await final_times(redis, ids)
            shown = await views(session, stack, ids)
            expected_hooks = {f"msg_{t}_{s}" for t, s in final.items()}
            await receiver.wait_for(expected_hooks, patience=WEBHOOK_PATIENCE)
            leftovers = await _leftover_entries(redis)
    finally:
        await redis.aclose()

    kinds = Counter(a.kind for a in record.acked)
    completed = [t for t, s in final.items() if s == "completed"]
    failed = {t: v for t, v in shown.items() if isinstance(v, dict) and v["status"] == "failed"}
    reasons = Counter(str(v.get("error")) for v in failed.values())
    lost = [t for t in ids if t not in final]
    completions = log_events(stack, "validator", "task_completed")
    duplicates = sorted(t for t, n in completions.items() if n > 1)
    hooks = receiver.by_id()
    missing_hooks = sorted(expected_hooks - receiver.accepted_ids())
    unexpected_hooks = sorted(set(hooks) - expected_hooks)
    redelivered = {i: len(d) for i, d in hooks.items() if len(d) > 1}
    unstable = [i for i, d in hooks.items() if len({str(x.event) for x in d}) > 1]
    bad_signatures = sum(not d.signed for d in receiver.deliveries)
    last_kill = kills[-1].at if kills else time.time()
    settled_after_last_kill = round(max(finished_at.values(), default=last_kill) - last_kill, 2)
    hooks_disagreeing = [
        i
        for i, d in hooks.items()
        if i in expected_hooks
        and any(x.event["data"]["status"] != final[x.event["data"]["task_id"]] for x in d)
    ]
    report(
        "validator-kills",
        {
            "changed": CHANGED,
            "tasks": TASKS,
            "acked": len(ids),
            "refused": sum(record.refused.values()),
            "by_type": dict(kinds),
            "completed": len(completed),
            "failed": len(failed),
            "failure_reasons": dict(reasons),
            "lost": len(lost),
            "duplicates": len(duplicates),
            "completions_logged": sum(completions.values()),
            "lost_races": count_log_lines(stack, "validator", "task_already_final"),
            "reclaimed": count_log_lines(stack, "validator", "entry_reclaimed"),
            "dead_lettered": count_log_lines(stack, "validator", "entry_dead_lettered"),
            "kills": len(kills),
            **recovery_figures(kills, finished_at),
            "settled_after_last_kill_s": settled_after_last_kill,
            "webhooks_expected": len(expected_hooks),
            "webhooks_delivered": len(receiver.accepted_ids() & expected_hooks),
            "webhook_deliveries": len(receiver.deliveries),
            "webhooks_refused_once": len(receiver.refused),
            "webhooks_redelivered": len(redelivered),
            "webhooks_unstable": len(unstable),
            "bad_signatures": bad_signatures,
            "leftover_stream_entries": leftovers,
            "crash_log_lines": crash_lines(stack),
        },
    )
    assert record.refused == Counter(), record.refused
    assert len(ids) == TASKS
    assert len(kills) >= 5
    assert lost == []
    assert settled_after_last_kill <= SETTLE_GOAL
    assert all(isinstance(v, dict) for v in shown.values())
    assert all(v["error"] for v in failed.values())
    assert duplicates == []
    assert missing_hooks == [] and unexpected_hooks == []
    assert unstable == [] and bad_signatures == 0 and hooks_disagreeing == []
    # Every id refused once came back under the same id (and is among the redelivered).
    assert receiver.refused and receiver.refused <= set(redelivered)
    assert leftovers == 0
    assert crash_lines(stack) == 0


async def _leftover_entries(redis: Redis) -> int:
    """Entries still in the streams once the work is done (waiting or pending); the
    replicas acknowledge and delete each entry after its task is final, so this drains to
    0 unless an entry was left behind."""
    deadline = time.monotonic() + 30
    while True:
        total = 0
        for priority in PRIORITY_ORDER:
            total += await redis.xlen(keys.stream(priority))
        if total == 0 or time.monotonic() > deadline:
            return total
        await asyncio.sleep(0.5)
