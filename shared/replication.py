"""Accepted means replicated: Redis WAIT after a write, on the connection that made it.

``WAIT n ms`` blocks until n replicas have acknowledged every write its connection made
before it (or ms pass) and returns how many did. So a write and its WAIT go out in one
pipeline, on one connection: sent apart, a pooled WAIT could run on another connection and
confirm nothing. A master's replication offset only grows, so confirming a later write
confirms every earlier one of the same master: :meth:`Replication.fence` uses that to
confirm what the master holds now, read in the same round trip.

With REDIS_MIN_REPLICAS_ACK=0 (the default) nothing waits and nothing is added to a write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from shared import keys
from shared.settings import RedisSettings


class NotReplicated(Exception):
    """The write is on the master but fewer than ``wanted`` replicas confirmed it in time."""

    def __init__(self, reply: Any, acked: int, wanted: int) -> None:
        super().__init__(f"{acked} of {wanted} replica(s) confirmed the write in time")
        self.reply = reply  # what the write itself returned
        self.acked = acked
        self.wanted = wanted


@dataclass(frozen=True)
class Replication:
    """REDIS_MIN_REPLICAS_ACK and REDIS_ACK_TIMEOUT_MS: how writes are confirmed."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> Replication:
        return cls(settings.redis_min_replicas_ack, settings.redis_ack_timeout_ms)

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script``'s reply; with replicas to wait for, only once they have its writes
        (else :class:`NotReplicated`, carrying the reply: the write happened on the master).

        redis-py's Script reloads itself on NOSCRIPT (a new master after a failover has an
        empty script cache); a pipeline does not, so the same is done here: load, resend.
        """
        if not self.enabled:
            return await script(keys=keys, args=args)
        redis = script.registered_client

        def call(pipe: Pipeline) -> None:
            pipe.evalsha(script.sha, len(keys), *keys, *args)

        try:
            reply, acked = await self._with_wait(redis, call)
        except NoScriptError:
            script.sha = await redis.script_load(script.script)
            reply, acked = await self._with_wait(redis, call)
        if acked < self.replicas:
            raise NotReplicated(reply, acked, self.replicas)
        return reply

    async def fence(self, redis: Redis, read: Callable[[Pipeline], None]) -> list[Any]:
        """The replies to what ``read`` queues, read on the master in one round trip with a
        write (INCR of keys.REPLICATION_FENCE) and its WAIT: what was read is then on the
        replicas too. :class:`NotReplicated` (reply: the read) if they did not confirm."""

        def queue(pipe: Pipeline) -> None:
            read(pipe)
            pipe.incr(keys.REPLICATION_FENCE)

        *replies, acked = await self._with_wait(redis, queue)
        replies = replies[:-1]  # the fence's own counter
        if acked < self.replicas:
            raise NotReplicated(replies, acked, self.replicas)
        return replies

    async def _with_wait(self, redis: Redis, queue: Callable[[Pipeline], None]) -> list[Any]:
        async with redis.pipeline(transaction=False) as pipe:
            queue(pipe)
            pipe.wait(self.replicas, self.timeout_ms)
            return await pipe.execute()


#: No waiting: every write counts once the master has it.
NO_REPLICATION = Replication()
