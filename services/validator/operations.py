"""The operator-state loop, every OPS_INTERVAL seconds, two jobs (docs/operations.md):

- publish to Redis what only validators know, for the gateway's /dashboard: the miner
  registry (uid, hotkey, stake), this replica's work (slots, tasks and requests per miner
  in flight), and the lb's GET /health answer (the lb itself has no Redis). Every key
  expires when nobody refreshes it, so a replica that stops vanishes from the page;
- read the figures every replica shares from Redis (running scores, dead letters, the
  webhook queue, the last weight setting) into this replica's gauges, so any replica's
  /metrics tells the same story and alerts need no particular replica.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import aiohttp
from redis.exceptions import RedisError

from services.validator.metrics import OperatorMetrics
from services.validator.storagefull import refused
from shared import keys
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import REDIS_DOWN_ERRORS

if TYPE_CHECKING:
    from services.validator.app import Components

log = get_logger("validator.operations")

#: A replica's heartbeat older than this leaves the validators list for good.
FORGET_AFTER = 3600.0
#: Longest lb error text kept for the page.
MAX_ERROR_CHARS = 200


class OperatorState:
    """One replica's share of the operator state."""

    def __init__(self, components: Components, consumer: str, session: aiohttp.ClientSession):
        self.c = components
        self.consumer = consumer
        self.session = session
        self.interval = components.settings.ops_interval
        self.ttl = max(15, int(self.interval * 3))
        self.ops: OperatorMetrics = components.metrics.ops
        self.ops.weights_interval.set(components.settings.weights_interval)

    async def tick(self) -> None:
        """One round: publish, then refresh the gauges."""
        lb = await self.poll_lb()
        await self.publish(lb)
        await self.refresh_gauges()

    async def poll_lb(self) -> dict[str, Any]:
        """The lb's GET /health answer, or why there is none."""
        url = self.c.settings.lb_url.rstrip("/")
        view: dict[str, Any] = {"url": url, "at": time.time(), "by": self.consumer}
        try:
            async with asyncio.timeout(min(5.0, self.interval)):
                async with self.session.get(f"{url}/health") as resp:
                    body = await resp.json(content_type=None) if resp.status == 200 else None
                    status = resp.status
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return view | {"reachable": False, "error": _text(exc)}
        if not isinstance(body, dict):
            return view | {"reachable": False, "error": f"GET /health answered {status}"}
        return view | {"reachable": True, "health": body}

    async def publish(self, lb: dict[str, Any]) -> None:
        """The registry, this replica's work and the lb's health, in one pipeline."""
        now = time.time()
        miners = self.c.registry.miners
        in_flight = self.c.processor.in_flight
        registry = [{"uid": m.uid, "hotkey": m.hotkey, "stake": m.stake} for m in miners]
        replica = {
            "consumer": self.consumer,
            "at": now,
            "slots": self.c.pool.size,
            "tasks_in_flight": len(self.c.pool.tasks),
            "miners_in_flight": {k: n for k, n in in_flight.items() if n > 0},
            "miners": len(miners),
            "mode": "chain" if self.c.settings.chain_mode else "static",
        }
        async with self.c.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.OPS_MINERS, _json(registry), ex=self.ttl)
            pipe.set(keys.ops_validator(self.consumer), _json(replica), ex=self.ttl)
            pipe.zadd(keys.OPS_VALIDATORS, {self.consumer: now})
            pipe.zremrangebyscore(keys.OPS_VALIDATORS, "-inf", now - FORGET_AFTER)
            pipe.set(keys.OPS_LB, _json(lb), ex=self.ttl)
            await pipe.execute()

    async def refresh_gauges(self) -> None:
        """Shared figures from Redis into this replica's gauges."""
        now = time.time()
        redis = self.c.redis
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.MINER_SCORES)
            pipe.xlen(keys.DEAD_LETTER_STREAM)
            pipe.zcount(keys.WEBHOOK_QUEUE, "-inf", now)
            pipe.zcard(keys.WEBHOOK_QUEUE)
            pipe.zrangebyscore(keys.WEBHOOK_QUEUE, "-inf", now, start=0, num=1, withscores=True)
            pipe.hmget(keys.WEIGHTS_LAST, "set_at", "since")
            scores, dead, due, queued, oldest, (set_at, since) = await pipe.execute()
        by_hotkey = {k.decode(): float(v) for k, v in scores.items()}
        in_flight = self.c.processor.in_flight
        self.ops.show_miners(
            [
                (m.uid, m.hotkey, by_hotkey.get(m.hotkey), in_flight[m.hotkey])
                for m in self.c.registry.miners
            ]
        )
        self.ops.dead_letters.set(dead)
        self.ops.webhook_backlog.labels("due").set(due)
        self.ops.webhook_backlog.labels("scheduled").set(max(0, queued - due))
        self.ops.webhook_oldest_due.set(max(0.0, now - oldest[0][1]) if oldest else 0.0)
        reference = set_at or since
        if reference is not None:
            self.ops.weights_last_set.set(float(reference))
        self.ops.redis_up.set(1)

    async def run(self, stop: asyncio.Event) -> None:
        """A round every OPS_INTERVAL until ``stop``; Redis being away only shows in
        validator_redis_up (the next round tries again)."""
        while not stop.is_set():
            try:
                await self.tick()
            except REDIS_DOWN_ERRORS as exc:
                self.ops.redis_up.set(0)
                log.warning("operations_redis_unavailable", error=str(exc))
            except RedisError as exc:
                # A full Redis (maxmemory) refuses the publications: skip the round.
                if not refused(exc, "operations", self.c.metrics):
                    raise
            if await pause(stop, self.interval):
                return


async def run(components: Components, consumer: str, stop: asyncio.Event) -> None:
    """The loop with an HTTP session of its own for the lb poll."""
    async with aiohttp.ClientSession(trust_env=False) as session:
        await OperatorState(components, consumer, session).run(stop)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:MAX_ERROR_CHARS]
