"""Per-miner history shared by every replica through Redis: running scores and counters.

Running scores (keys.MINER_SCORES) are an exponential moving average of each response's
combined score, a failed response counting 0. Counters (keys.miner_stats) drive selection:
how often a miner was tried, and its recent run of failures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys

#: Latency samples kept per miner (keys.miner_latencies), for the dashboard's median.
LATENCIES_KEPT = 100

# KEYS: scores hash. ARGV: alpha, then hotkey, score pairs. First score sets the average.
_UPDATE_SCORES = """
local alpha = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local new = tonumber(ARGV[i + 1])
  if old then new = (1 - alpha) * tonumber(old) + alpha * new end
  redis.call('HSET', KEYS[1], ARGV[i], string.format('%.6f', new))
end
return #ARGV
"""


@dataclass(frozen=True)
class MinerState:
    """What selection knows about one miner."""

    score: float | None = None
    tries: int = 0
    consecutive_failures: int = 0
    last_failure: float = 0.0


class MinerStats:
    """Reads and updates running scores and counters."""

    def __init__(self, redis: Redis, alpha: float) -> None:
        self.redis = redis
        self.alpha = alpha
        self._update = redis.register_script(_UPDATE_SCORES)

    async def record(
        self,
        outcomes: dict[str, tuple[bool, float | None]],
        latencies: dict[str, float] | None = None,
    ) -> None:
        """Record one attempt: hotkey -> (answered, combined score or None if unjudged),
        and the answers' latencies (seconds) for the dashboard's per-miner median."""
        now = time.time()
        pairs: list[str | float] = []
        async with self.redis.pipeline(transaction=False) as pipe:
            for hotkey, seconds in (latencies or {}).items():
                pipe.lpush(keys.miner_latencies(hotkey), round(seconds, 4))
                pipe.ltrim(keys.miner_latencies(hotkey), 0, LATENCIES_KEPT - 1)
            for hotkey, (answered, score) in outcomes.items():
                key = keys.miner_stats(hotkey)
                pipe.hincrby(key, "tries", 1)
                if answered:
                    pipe.hset(key, "consecutive_failures", 0)
                else:
                    pipe.hincrby(key, "failures", 1)
                    pipe.hincrby(key, "consecutive_failures", 1)
                    pipe.hset(key, "last_failure", repr(now))
                if score is not None:
                    pairs += [hotkey, score]
            await pipe.execute()
        if pairs:
            await self._update(keys=[keys.MINER_SCORES], args=[self.alpha, *pairs])

    async def scores(self) -> dict[str, float]:
        raw = await self.redis.hgetall(keys.MINER_SCORES)
        return {k.decode(): float(v) for k, v in raw.items()}

    async def states(self, hotkeys: list[str]) -> dict[str, MinerState]:
        """The state of each of ``hotkeys`` (defaults for miners never seen)."""
        if not hotkeys:
            return {}
        scores = await self.scores()
        async with self.redis.pipeline(transaction=False) as pipe:
            for hotkey in hotkeys:
                pipe.hmget(
                    keys.miner_stats(hotkey), "tries", "consecutive_failures", "last_failure"
                )
            rows = await pipe.execute()
        return {
            hotkey: MinerState(
                score=scores.get(hotkey),
                tries=int(tries or 0),
                consecutive_failures=int(streak or 0),
                last_failure=float(last or 0.0),
            )
            for hotkey, (tries, streak, last) in zip(hotkeys, rows, strict=True)
        }
