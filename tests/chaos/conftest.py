"""Chaos-test helpers: the devnet stack at the shipped defaults, task submission with the time
of each acknowledgement, a webhook receiver that checks every signature, and the summary
each test states its result with.

These tests are not part of ``make test`` (pyproject's addopts ignore tests/chaos); run
them with ``make chaos``. Each prints one ``chaos <name>: key=value ...`` line and writes
the same figures to ``var/chaos/<name>.json``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from devnet.stack import Stack
from devnet.workload import Workload
from shared import keys

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "var" / "chaos"

#: The one setting the chaos runs change from the shipped defaults, and why: every
#: submission comes from one loopback address, which the default per-client rate limit
#: would refuse after the first hundred. Recovery settings (RECLAIM_IDLE, RECLAIM_INTERVAL,
#: HEARTBEAT_INTERVAL, webhook lease and retries, RETRY_DELAY, TASK_TIMEOUT) stay at their
#: defaults. Each figures line names what was changed.
CHAOS_ENV = {"RATE_LIMITS": "off"}
CHANGED = "RATE_LIMITS=off(one_client_address)"

WORKLOAD = Workload(
    spoken="chaos keeps every task that was acknowledged",
    article=(
        "Validators send tasks to miners and score every answer. Replicas share the work "
        "through Redis streams. A replica that dies leaves its entries pending, and another "
        "one reclaims them after they have been idle for a while."
    ),
)


def report(name: str, figures: dict[str, Any]) -> None:
    """The test's documented output: one summary line on stdout and a JSON file."""
    line = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nchaos {name}: {line}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def api(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway}/api/v1"


@dataclass
class Ack:
    """A submission the gateway acknowledged (202), with the client's clock at that moment."""

    task_id: str
    kind: str
    at: float


@dataclass
class Submissions:
    """Every submission's outcome: the acknowledged ones and a count of everything else."""

    acked: list[Ack] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)


async def submit(
    session: aiohttp.ClientSession,
    stack: Stack,
    kind: str,
    record: Submissions,
    *,
    callback_url: str | None = None,
    client_timeout: float = 15.0,
) -> Ack | None:
    """Submit one task; record the 202 (with its time) or why there was none."""
    url = f"{api(stack)}/{kind}"
    request = WORKLOAD.request(kind, callback_url)
    try:
        async with session.post(
            url, timeout=aiohttp.ClientTimeout(total=client_timeout), **request
        ) as resp:
            body = await resp.read()
            if resp.status != 202:
                record.refused[f"http_{resp.status}"] += 1
                return None
    except TimeoutError:
        record.refused["client_timeout"] += 1
        return None
    except aiohttp.ClientError as exc:
        record.refused[type(exc).__name__] += 1
        return None
    ack = Ack(json.loads(body)["task_id"], kind, time.time())
    record.acked.append(ack)
    return ack


async def statuses(redis: Redis, task_ids: list[str]) -> dict[str, str | None]:
    """Each task's status straight from its hash (None: no such task)."""
    async with redis.pipeline(transaction=False) as pipe:
        for task_id in task_ids:
            pipe.hget(keys.task(task_id), "status")
        values = await pipe.execute()
    return {t: v.decode() if v else None for t, v in zip(task_ids, values, strict=True)}


async def wait_all_final(redis: Redis, task_ids: list[str], patience: float) -> dict[str, str]:
    """Poll Redis until every task is completed or failed, or patience runs out."""
    deadline = time.monotonic() + patience
    while True:
        try:
            current = await statuses(redis, task_ids)
        except (ConnectionError, OSError):
            current = {}
        final = {t: s for t, s in current.items() if s in ("completed", "failed")}
        if len(final) == len(task_ids) or time.monotonic() > deadline:
            return final
        await asyncio.sleep(0.5)


async def views(
    session: aiohttp.ClientSession, stack: Stack, task_ids: list[str]
) -> dict[str, dict[str, Any] | int]:
    """Each task as the public API shows it (or the HTTP status when it is not a 200)."""
    found: dict[str, dict[str, Any] | int] = {}
    gate = asyncio.Semaphore(16)

    async def one(task_id: str) -> None:
        async with gate, session.get(f"{api(stack)}/tasks/{task_id}") as resp:
            found[task_id] = await resp.json() if resp.status == 200 else resp.status

    await asyncio.gather(*(one(t) for t in task_ids))
    return found


def verify_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification as docs/validator.md gives it to receivers."""
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    key = (
        base64.b64decode(secret.removeprefix("whsec_"))
        if secret.startswith("whsec_")
        else secret.encode()
    )
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return any(
        hmac.compare_digest(expected, sig.removeprefix("v1,"))
        for sig in headers.get("webhook-signature", "").split()
    )


@dataclass
class Delivery:
    webhook_id: str
    signed: bool
    event: dict[str, Any]


class WebhookReceiver:
    """A callback endpoint on loopback that keeps every delivery it gets.

    With ``refuse_first_every`` = n, every n-th webhook id (by a hash of the id) gets a 503
    on its first delivery, so the validator has to redeliver it: redeliveries are then
    certain to happen, and the test can check that they keep their webhook-id and body.
    """

    def __init__(self, secret: str, refuse_first_every: int = 0) -> None:
        self.secret = secret
        self.refuse_first_every = refuse_first_every
        self.deliveries: list[Delivery] = []
        self.refused: set[str] = set()
        self._arrived = asyncio.Condition()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self.hook)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        webhook_id = headers.get("webhook-id", "")
        delivery = Delivery(
            webhook_id, verify_signature(self.secret, headers, body), json.loads(body)
        )
        self.deliveries.append(delivery)
        status = 204
        if self._refuse(webhook_id):
            self.refused.add(webhook_id)
            status = 503
        async with self._arrived:
            self._arrived.notify_all()
        return web.Response(status=status)

    def _refuse(self, webhook_id: str) -> bool:
        if not self.refuse_first_every or webhook_id in self.refused:
            return False
        digest = hashlib.sha256(webhook_id.encode()).digest()
        return digest[0] % self.refuse_first_every == 0

    def by_id(self) -> dict[str, list[Delivery]]:
        grouped: dict[str, list[Delivery]] = {}
        for d in self.deliveries:
            grouped.setdefault(d.webhook_id, []).append(d)
        return grouped

    def accepted_ids(self) -> set[str]:
        """Ids with a delivery that was answered 2xx (a refused first try does not count)."""
        return {i for i, d in self.by_id().items() if len(d) > (1 if i in self.refused else 0)}

    async def wait_for(self, webhook_ids: set[str], patience: float) -> bool:
        """Until each of ``webhook_ids`` has been accepted once; False if patience ran out."""
        async with self._arrived:
            try:
                async with asyncio.timeout(patience):
                    await self._arrived.wait_for(lambda: webhook_ids <= self.accepted_ids())
            except TimeoutError:
                return False
        return True


def log_events(stack: Stack, service_prefix: str, event: str) -> Counter[str]:
    """How often each task_id appears with ``event`` in the services' log files."""
    pattern = re.compile(rf"\b{re.escape(event)}\b.*?\btask_id=(\S+)")
    counts: Counter[str] = Counter()
    for path in sorted((stack.var / "logs").glob(f"{service_prefix}*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if match := pattern.search(line):
                counts[match.group(1)] += 1
    return counts


def count_log_lines(stack: Stack, service_prefix: str, event: str) -> int:
    pattern = re.compile(rf"\b{re.escape(event)}\b")
    return sum(
        1
        for path in (stack.var / "logs").glob(f"{service_prefix}*.log")
        for line in path.read_text(errors="replace").splitlines()
        if pattern.search(line)
    )


#: Log lines that mean a bug rather than an outage: a worker or loop that died of an
#: unexpected exception, or any traceback.
CRASH_EVENTS = ("task_crashed", "loop_crashed", "Traceback")


def crash_lines(stack: Stack) -> int:
    """Crash lines in every service's log so far (compare before and after a phase)."""
    return sum(count_log_lines(stack, "", event) for event in CRASH_EVENTS)
