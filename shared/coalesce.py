"""Script calls made in the same event-loop tick share one Redis round trip.

Under load many submissions reach their create script in the same tick. Sent one by one,
each pays a pool checkout, a socket write, a read wake-up and a reply parse of its own;
queued here, they go out as one pipeline (``transaction=False``): still one EVALSHA per
call, so each stays atomic on its own, and each caller gets its own reply or exception
(one failing script fails only its caller). A lone call runs exactly as before, through
:meth:`shared.replication.Replication.run`.

With REDIS_MIN_REPLICAS_ACK > 0 one WAIT follows the scripts in the same pipeline: it
confirms every write its connection made before it, so its count applies to each script
in the batch (too few: :class:`~shared.replication.NotReplicated` for each of them).

A pipeline does not reload scripts on NOSCRIPT (a new master after a failover, or SCRIPT
FLUSH, empties the cache): the calls that got it are resent once after SCRIPT LOAD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from shared.replication import NO_REPLICATION, NotReplicated, Replication


@dataclass
class _Call:
    script: AsyncScript
    keys: Sequence[Any]
    args: Sequence[Any]
    future: asyncio.Future[Any] = field(repr=False)


class ScriptBatcher:
    """Runs script calls, coalescing those queued in one tick into one pipeline."""

    def __init__(self, redis: Redis, replication: Replication = NO_REPLICATION) -> None:
        self.redis = redis
        self.replication = replication
        self._queue: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()  # strong references until done

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """``script``'s reply, as :meth:`Replication.run` gives it (same exceptions)."""
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, args, loop.create_future())
        self._queue.append(call)
        if len(self._queue) == 1:
            # The task's first step runs after the callbacks already due in this tick,
            # so every call they queue meanwhile joins this batch.
            task = loop.create_task(self._flush())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return await call.future

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        try:
            if len(batch) == 1:
                one = batch[0]
                results = [await self._single(one)]
            else:
                results = await self._pipelined(batch)
        except BaseException as exc:
            for call in batch:
                _settle(call.future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for call, result in zip(batch, results, strict=True):
            _settle(call.future, result)

    async def _single(self, call: _Call) -> Any:
        try:
            return await self.replication.run(call.script, call.keys, call.args)
        except Exception as exc:  # handed to its caller by _settle
            return exc

    async def _pipelined(self, batch: list[_Call]) -> list[Any]:
        results = await self._round(batch)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for script in {id(batch[i].script): batch[i].script for i in missing}.values():
                script.sha = await self.redis.script_load(script.script)
            again = await self._round([batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _round(self, batch: list[_Call]) -> list[Any]:
        """One pipeline: each call's reply, exception or NotReplicated."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            if self.replication.enabled:
                pipe.wait(self.replication.replicas, self.replication.timeout_ms)
            replies = await pipe.execute(raise_on_error=False)
        if not self.replication.enabled:
            return replies
        *replies, acked = replies
        if isinstance(acked, Exception):
            return [r if isinstance(r, Exception) else acked for r in replies]
        wanted = self.replication.replicas
        return [
            r
            if isinstance(r, Exception) or acked >= wanted
            else NotReplicated(r, int(acked), wanted)
            for r in replies
        ]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    """Resolve a caller's future, unless it was cancelled meanwhile."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
