"""Weights from running scores, set on chain by one replica per WEIGHTS_INTERVAL.

The replica that wins a Redis lock (SET NX with an expiry just under the interval) sets the
weights; the others skip that round. In static mode the weights are computed and logged only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import bittensor as bt
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.validator.metrics import Metrics
from services.validator.miners import ChainClient, Miner, MinerRegistry
from services.validator.minerstats import MinerStats
from services.validator.storagefull import refused
from shared import keys
from shared.logging import get_logger
from shared.periodic import every
from shared.redis import REDIS_DOWN_ERRORS

log = get_logger("validator.weights")


def compute_weights(miners: list[Miner], scores: dict[str, float]) -> dict[int, float]:
    """uid -> weight, proportional to running score and summing to 1 (empty if all zero)."""
    raw = {m.uid: max(0.0, scores.get(m.hotkey, 0.0)) for m in miners}
    total = sum(raw.values())
    if total <= 0:
        return {}
    return {uid: value / total for uid, value in sorted(raw.items())}


class WeightSetter:
    """One round per interval: take the lock, compute, set (chain) or log (static)."""

    def __init__(
        self,
        redis: Redis,
        registry: MinerRegistry,
        stats: MinerStats,
        metrics: Metrics,
        *,
        owner: str,
        interval: float,
        netuid: int,
        chain: ChainClient | None,
        wallet: Any,
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.stats = stats
        self.metrics = metrics
        self.owner = owner
        self.interval = interval
        self.netuid = netuid
        self.chain = chain
        self.wallet = wallet

    async def tick(self) -> dict[int, float] | None:
        """One round; the weights this replica set or logged, None if another replica holds
        the lock or there is nothing to weigh."""
        lock_ms = max(100, int(self.interval * 1000 * 0.9))
        if not await self.redis.set(keys.WEIGHTS_LOCK, self.owner, nx=True, px=lock_ms):
            self.metrics.weights_set.labels("skipped_locked").inc()
            return None
        weights = compute_weights(self.registry.miners, await self.stats.scores())
        if not weights:
            self.metrics.weights_set.labels("skipped_empty").inc()
            log.info("weights_skipped", reason="no scored miners")
            await self.note("skipped_empty")
            return None
        uids, values = list(weights), list(weights.values())
        if self.chain is None:
            log.info("weights_computed", mode="static", uids=uids, weights=_rounded(values))
            self.metrics.weights_set.labels("logged").inc()
            await self.note("logged", len(uids))
            return weights
        await self.chain.set_weights(self.netuid, uids, values, self.wallet)
        log.info("weights_set", netuid=self.netuid, uids=uids, weights=_rounded(values))
        self.metrics.weights_set.labels("set").inc()
        await self.note("set", len(uids))
        return weights

    async def note(self, outcome: str, uids: int = 0) -> None:
        """Record the round in keys.WEIGHTS_LAST for operators (the dashboard, the
        validator_weights_last_set_timestamp_seconds gauge): every round's outcome, and
        for a success (set, or logged in static mode) its time, mode and miner count."""
        now = repr(time.time())
        fields = {"round_at": now, "outcome": outcome, "by": self.owner}
        fields["interval"] = repr(self.interval)
        if outcome in ("set", "logged"):
            fields |= {"set_at": now, "mode": "chain" if self.chain else "static"}
            fields["uids"] = str(uids)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(keys.WEIGHTS_LAST, "since", now)
            pipe.hset(keys.WEIGHTS_LAST, mapping=fields)
            await pipe.execute()

    async def started(self) -> None:
        """Mark when the first validator began setting weights (kept across restarts), the
        reference time of the "weights not set" alert until a first success."""
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(keys.WEIGHTS_LAST, "since", repr(time.time()))
                pipe.hset(keys.WEIGHTS_LAST, "interval", repr(self.interval))
                await pipe.execute()
        except REDIS_DOWN_ERRORS as exc:
            log.warning("weights_redis_unavailable", error=str(exc))
        except RedisError as exc:
            if not refused(exc, "weights", self.metrics):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        """A round every WEIGHTS_INTERVAL until ``stop``; failures wait for the next round."""
        await self.started()
        async for _ in every(self.interval, stop):
            try:
                await self.tick()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("weights_redis_unavailable", error=str(exc))
            except RedisError as exc:
                if not refused(exc, "weights", self.metrics):
                    raise
            except (bt.BittensorError, TimeoutError, OSError) as exc:
                self.metrics.weights_set.labels("failed").inc()
                log.error("weights_failed", error=repr(exc))
                try:
                    await self.note("failed")
                except REDIS_DOWN_ERRORS as exc:
                    log.warning("weights_redis_unavailable", error=str(exc))
                except RedisError as exc:
                    if not refused(exc, "weights", self.metrics):
                        raise


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]
