"""Scenario 6: Redis cost per task, per service. The devnet stack (gateway, two validators,
simulated miners, lb and WhisperX) runs against a real redis-server; Redis's own counters
(INFO commandstats: calls per command; INFO cpu: used_cpu_user + used_cpu_sys of the main
thread and of the whole process; INFO memory) are read before and after each phase:

- gateway: TASKS submissions (transcription, TTS, summarization in turn, 16 at a time) with
  the validators stopped, so only the gateway talks to Redis;
- validator: the validators started and the queue drained (completion seen on their
  /metrics, which do not touch Redis), once for tasks without a callback_url and once for
  tasks with one: the difference is the webhook sender's share;
- idle: IDLE seconds with nothing to do (the blocking reads, reclaim sweeps, heartbeats,
  network statistics and, with Sentinel, the Sentinels' own pings).

Two set-ups: ``single`` (one Redis, every default) and ``sentinel`` (a master, one replica,
three Sentinels, REDIS_MIN_REPLICAS_ACK=1; the master's counters, the replica's CPU apart).
Redis keeps AOF on (appendfsync everysec), as deployed. Rate limits stay on, at limits one
bench client never reaches (RATE_LIMITS below), so their Redis work is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import redis as redis_py
from aiohttp import web

from bench.common import WORK, log
from devnet.redis_server import RedisServer, free_port
from devnet.sentinel import SentinelGroup
from devnet.stack import Ports, Stack
from devnet.workload import KINDS, Workload

WORKLOAD = Workload(
    spoken="the redis cost of one task",
    article=(
        "Validators send tasks to miners and score every answer. Replicas share the work "
        "through Redis streams. The gateway stores each task and queues it for them."
    ),
)
#: Limits high enough never to refuse the bench, low enough to be enforced (and cost Redis).
RATE_LIMITS = "submit=1000000/min,read=1000000/min,meta=1000000/min"
IDLE = 20.0
#: RESULT_TTL's default: how long a finished task's data stays in Redis.
TTL = 7 * 24 * 3600
#: Commands the bench itself sends (its INFO reads): not counted.
OWN = {"info", "config"}


def run(quick: bool) -> dict[str, Any]:
    tasks = 60 if quick else 300
    setups = {name: asyncio.run(_setup(name, tasks)) for name in ("single", "sentinel")}
    summary = {}
    for name, r in setups.items():
        gateway = r["gateway"]["cpu_us_per_task"]
        validator = r["validator_webhooks"]["cpu_us_per_task_net"]
        summary[name] = {
            "gateway_cpu_us_per_task": gateway,
            "validator_cpu_us_per_task": validator,
            "calls_per_task": round(
                r["gateway"]["calls_per_task"] + r["validator_webhooks"]["calls_per_task_net"], 1
            ),
            # One Redis main thread is one core: the task rate that would saturate it.
            "tasks_per_s_at_one_core": round(1e6 / (gateway + validator)),
            "memory_bytes_per_finished_task": r["memory_bytes_per_finished_task"],
            # Finished tasks stay RESULT_TTL (7 days by default): the steady task rate at
            # which they alone fill a node's memory.
            "tasks_per_s_filling_memory_in_result_ttl": {
                f"{gib}_gib": round(gib * 1024**3 / r["memory_bytes_per_finished_task"] / TTL, 2)
                for gib in (16, 64)
            },
        }
    return {"tasks_per_phase": tasks, "setups": setups, "summary": summary}


@contextlib.contextmanager
def redis_for(name: str, base: Path) -> Iterator[tuple[int, int | None, dict[str, str]]]:
    """(master port, replica port or None, environment for the services)."""
    if name == "single":
        server = RedisServer(base / "redis").start()
        try:
            yield server.port, None, {}
        finally:
            server.stop()
        return
    group = SentinelGroup(base / "redis").start()
    replica = next(p for p in group.nodes if p != group.first_master)
    try:
        yield (
            group.first_master,
            replica,
            {"REDIS_SENTINELS": group.addresses, "REDIS_MIN_REPLICAS_ACK": "1"},
        )
    finally:
        group.stop()


async def _setup(name: str, tasks: int) -> dict[str, Any]:
    base = WORK / "redis_cost" / name
    with redis_for(name, base) as (master, replica, env):
        stack = Stack(
            base / "stack",
            Ports.free(),
            redis_url=f"redis://127.0.0.1:{master}/0",
            extra_env={**env, "RATE_LIMITS": RATE_LIMITS},
        )
        log(f"redis_cost {name}: starting the stack")
        await asyncio.to_thread(stack.start, timeout=120)
        try:
            return await _phases(stack, master, replica, tasks)
        finally:
            await asyncio.to_thread(stack.stop)


async def _phases(stack: Stack, master: int, replica: int | None, tasks: int) -> dict[str, Any]:
    hooks = Hooks()
    runner = web.AppRunner(hooks.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    callback = f"http://127.0.0.1:{port}/hook"
    counters = Counters(master, replica)
    api = f"http://127.0.0.1:{stack.ports.gateway}/api/v1"
    try:
        await validators(stack, start=False)
        async with aiohttp.ClientSession() as session:
            before_memory = counters.memory()
            runs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
            for label, url in (("plain", None), ("hooked", callback)):
                log(f"redis_cost: {label} tasks, gateway phase (validators stopped)")
                phase = counters.start()
                await submit_all(session, api, tasks, url)
                gateway_run = phase.stop(tasks)
                log(f"redis_cost: {label} tasks, validator phase")
                phase = counters.start()
                await validators(stack, start=True)
                await wait_finished(session, stack, tasks)
                if url:
                    await hooks.wait(tasks)
                runs[label] = (gateway_run, phase.stop(tasks))
                if not url:
                    await validators(stack, start=False)
            done_memory = counters.memory()
            log(f"redis_cost: idle phase ({IDLE:.0f} s)")
            idle = counters.start()
            await asyncio.sleep(IDLE)
            idle_figures = idle.stop(None, seconds=IDLE)
    finally:
        await runner.cleanup()
    (gateway_plain, validator_plain), (gateway_hooked, validator_hooked) = (
        runs["plain"],
        runs["hooked"],
    )
    gateway = merge(gateway_plain, gateway_hooked)
    for drained in (validator_plain, validator_hooked):
        net_of_idle(drained, idle_figures, tasks)
    return {
        "gateway": gateway,
        "validator": validator_plain,
        "validator_webhooks": validator_hooked,
        "webhook_sender_cpu_us_per_task": round(
            validator_hooked["cpu_us_per_task_net"] - validator_plain["cpu_us_per_task_net"], 1
        ),
        "webhook_sender_calls_per_task": round(
            validator_hooked["calls_per_task_net"] - validator_plain["calls_per_task_net"], 1
        ),
        "idle_two_validators": idle_figures,
        "memory_bytes_per_finished_task": round((done_memory - before_memory) / (2 * tasks)),
        "transcription_input_bytes": len(WORKLOAD.wav),
    }


def net_of_idle(drained: dict[str, Any], idle: dict[str, Any], tasks: int) -> None:
    """Add the per-task figures without the background the validators cost anyway (the idle
    phase's rate over the drain's wall time): what one more task adds."""
    background = drained["wall_s"] / tasks
    drained["cpu_us_per_task_net"] = round(
        drained["cpu_us_per_task"] - idle["cpu_us_per_s"] * background, 1
    )
    drained["calls_per_task_net"] = round(
        drained["calls_per_task"] - idle["calls_per_s"] * background, 1
    )


async def validators(stack: Stack, *, start: bool) -> None:
    """Stop both validators (SIGTERM: they finish or hand back their work), or start them
    (the second one the first time: Stack.add_replica)."""
    if not start:
        for name in [n for n in stack.services if n.startswith("validator")]:
            await asyncio.to_thread(stack.kill, name, signal.SIGTERM)
        return
    if "validator-2" not in stack.services:
        await asyncio.to_thread(stack.spawn, stack.services["validator"])
        await asyncio.to_thread(stack.wait_ready, stack.services["validator"], 60)
        await asyncio.to_thread(stack.add_replica, "validator")
        return
    for name in ("validator", "validator-2"):
        await asyncio.to_thread(stack.spawn, stack.services[name])
    for name in ("validator", "validator-2"):
        await asyncio.to_thread(stack.wait_ready, stack.services[name], 60)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two equal-sized runs of one phase as one (means of the per-task figures)."""
    out: dict[str, Any] = {}
    for key, value in a.items():
        if isinstance(value, (int, float)):
            out[key] = round((value + b[key]) / 2, 1)
        elif isinstance(value, dict):
            names = set(value) | set(b[key])
            out[key] = {n: round((value.get(n, 0) + b[key].get(n, 0)) / 2, 2) for n in names}
            out[key] = dict(sorted(out[key].items(), key=lambda kv: -kv[1]))
    return out


async def submit_all(
    session: aiohttp.ClientSession, api: str, count: int, callback: str | None
) -> None:
    gate = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        kind = KINDS[i % len(KINDS)]
        request = WORKLOAD.request(kind, callback)
        async with gate, session.post(f"{api}/{kind}", **request) as resp:
            if resp.status != 202:
                raise RuntimeError(f"submission answered {resp.status}: {await resp.text()}")

    await asyncio.gather(*(one(i) for i in range(count)))


async def wait_finished(session: aiohttp.ClientSession, stack: Stack, total: int) -> None:
    """Until the validators' /metrics count ``total`` finished tasks (no Redis involved)."""
    pattern = re.compile(r'^validator_tasks_total\{[^}]*outcome="(completed|failed)"[^}]*\} (\S+)')
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        finished = 0.0
        for name, service in stack.services.items():
            if not name.startswith("validator"):
                continue
            async with session.get(f"{service.url}/metrics") as resp:
                for line in (await resp.text()).splitlines():
                    if match := pattern.match(line):
                        finished += float(match.group(2))
        if finished >= total:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the validators did not finish {total} tasks in time")


class Hooks:
    """The webhook receiver: counts deliveries, answers 204."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self._arrived = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self.hook)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.ids.add(request.headers.get("webhook-id", ""))
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=204)

    async def wait(self, count: int) -> None:
        async with self._arrived, asyncio.timeout(120):
            await self._arrived.wait_for(lambda: len(self.ids) >= count)


class Counters:
    """Redis's own counters on the master (and the replica's CPU)."""

    def __init__(self, master: int, replica: int | None) -> None:
        self.master = redis_py.Redis(port=master)
        self.replica = redis_py.Redis(port=replica) if replica else None

    def memory(self) -> int:
        return int(self.master.info("memory")["used_memory"])

    def start(self) -> Phase:
        self.master.config_resetstat()
        return Phase(self)

    def cpu(self, client: redis_py.Redis) -> tuple[float, float]:
        info = client.info("cpu")
        main = info["used_cpu_user_main_thread"] + info["used_cpu_sys_main_thread"]
        return main, info["used_cpu_user"] + info["used_cpu_sys"]


class Phase:
    """One measured phase: counters at its start, deltas at :meth:`stop`."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.began = time.monotonic()
        self.cpu = counters.cpu(counters.master)
        self.replica_cpu = counters.cpu(counters.replica) if counters.replica else None

    def stop(self, tasks: int | None, *, seconds: float | None = None) -> dict[str, Any]:
        """Per task (or, for ``tasks=None``, per second of ``seconds``)."""
        counters = self.counters
        wall = time.monotonic() - self.began
        main, total = (a - b for a, b in zip(counters.cpu(counters.master), self.cpu, strict=True))
        stats = counters.master.info("commandstats")
        calls = {
            name.removeprefix("cmdstat_"): int(v["calls"])
            for name, v in stats.items()
            if name.removeprefix("cmdstat_") not in OWN
        }
        per = tasks or seconds or 1.0
        unit = "task" if tasks else "s"
        figures: dict[str, Any] = {
            "wall_s": round(wall, 1),
            f"calls_per_{unit}": round(sum(calls.values()) / per, 1),
            f"cpu_us_per_{unit}": round(main * 1e6 / per, 1),
            f"cpu_us_per_{unit}_all_threads": round(total * 1e6 / per, 1),
            f"commands_per_{unit}": {
                n: round(c / per, 2) for n, c in sorted(calls.items(), key=lambda kv: -kv[1])
            },
        }
        if self.replica_cpu is not None and counters.replica is not None:
            replica_main = counters.cpu(counters.replica)[0] - self.replica_cpu[0]
            figures[f"replica_cpu_us_per_{unit}"] = round(replica_main * 1e6 / per, 1)
        return figures
