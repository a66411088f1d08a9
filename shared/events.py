"""Live task events: each task's status changes, and a per-process hub that wakes watchers.

Writing: the task scripts (shared.storescripts) append a snapshot of the task's hash to
its stream keys.task_events under id ``0-<seq>`` in the same script that changes the
status, trim it to EVENTS_KEPT entries, give it the task's expiry, and PUBLISH the seq on
keys.task_channel. An event can therefore never be missed or seen out of order: the stream
is the record, the publication only says "read it".

Reading: :class:`EventHub` holds ONE pub/sub connection per process and multiplexes every
watched task over it (SUBSCRIBE on the first watcher of a task, UNSUBSCRIBE after the
last), so thousands of SSE clients or waiting requests hold no Redis connection each and
no blocking XREAD ties up the shared pool. A woken watcher reads the stream with XRANGE on
the ordinary pool. Redis pub/sub is at-most-once (a reconnect can drop a message), so the
hub wakes every watcher after it reconnects, and watchers re-read the stream on every
keep-alive tick as well: a lost publication delays an event, it never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import keys
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import REDIS_DOWN_ERRORS
from shared.tasks import Task

log = get_logger("events")

#: Seconds a new watcher waits for Redis to confirm its subscription before reading the
#: stream (read earlier, an event published in between would only be seen a tick later).
CONFIRM_TIMEOUT = 2.0
#: Seconds the hub's read waits for a message (well under any socket_timeout).
READ_TIMEOUT = 1.0
#: Seconds between reconnection attempts while Redis is away.
RETRY_DELAY = 1.0
#: Seconds of silence on the pub/sub connection after which the hub sends a PING, and
#: seconds it then waits for the reply before it drops the connection. A master whose host
#: died without resetting its connections (a lost node, a partition) leaves a pub/sub
#: socket that never errors: the OS would give up on it only after about 15 minutes, and
#: all that time watchers would be woken only by their own keep-alive re-reads.
PING_AFTER = 5.0
PONG_TIMEOUT = 3.0


@dataclass(frozen=True)
class Event:
    """One status change: its sequence number (the SSE id) and the task as it then was."""

    seq: int
    task: Task


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(int(entry_id.split(b"-", 1)[1]), Task.from_hash(fields))


async def read_events(redis: Redis, task_id: str, after: int | None) -> list[Event]:
    """The events after sequence number ``after``, oldest first; with ``after`` None, only
    the latest one (the task's current state). Empty for a task without events."""
    stream = keys.task_events(task_id)
    if after is None:
        rows = await redis.xrevrange(stream, "+", "-", count=1)
    else:
        rows = await redis.xrange(stream, f"(0-{after}", "+")
    return [_event(entry_id, fields) for entry_id, fields in rows]


class Watch:
    """One watcher of one task: woken whenever the task's channel says a new event exists."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, seconds: float) -> bool:
        """Until woken (True) or ``seconds`` pass (False)."""
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class EventHub:
    """One process's pub/sub connection, shared by every watcher in the process."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._watches: dict[str, set[Watch]] = {}  # channel -> watchers
        self._confirmed: dict[str, asyncio.Event] = {}  # channel -> Redis confirmed it
        self._pubsub: PubSub | None = None
        self._ready = False
        self.closing = False

    def close(self) -> None:
        """The process is shutting down: wake every watcher, which should then stop
        (an SSE client reconnects elsewhere with Last-Event-ID)."""
        self.closing = True
        self._wake_all()

    @property
    def connected(self) -> bool:
        """Subscribed on a live connection (as far as the last PING showed)."""
        return self._ready

    @property
    def watched(self) -> int:
        """Tasks watched by at least one watcher of this process."""
        return len(self._watches)

    @contextlib.asynccontextmanager
    async def watch(self, task_id: str) -> AsyncIterator[Watch]:
        """Watch ``task_id`` for the duration of the block. Once entered, every event the
        task gets from then on wakes the watch (read the stream after entering)."""
        channel = keys.task_channel(task_id)
        watch = Watch(task_id)
        first = channel not in self._watches
        self._watches.setdefault(channel, set()).add(watch)
        if first:
            self._confirmed[channel] = asyncio.Event()
            if self._ready and self._pubsub is not None:
                with contextlib.suppress(*REDIS_DOWN_ERRORS):
                    await self._pubsub.subscribe(channel)
        confirmed = self._confirmed.get(channel)
        if self._ready and confirmed is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONFIRM_TIMEOUT):
                    await confirmed.wait()
        try:
            yield watch
        finally:
            await self._leave(channel, watch)

    async def _leave(self, channel: str, watch: Watch) -> None:
        watchers = self._watches.get(channel)
        if watchers is None:
            return
        watchers.discard(watch)
        if watchers:
            return
        del self._watches[channel]
        self._confirmed.pop(channel, None)
        if self._ready and self._pubsub is not None:
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await self._pubsub.unsubscribe(channel)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve watchers until ``stop``; reconnects (waking everyone) after Redis errors."""
        while not stop.is_set():
            try:
                await self._serve(stop)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("event_hub_disconnected", error=str(exc) or type(exc).__name__)
            await self._disconnect()
            self._wake_all()
            if await pause(stop, RETRY_DELAY):
                break
        await self._disconnect()

    async def _serve(self, stop: asyncio.Event) -> None:
        pubsub = self.redis.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(keys.EVENTS_IDLE_CHANNEL)
        if pubsub.connection is not None:
            # redis-py reconnects (and resubscribes) inside get_message without raising;
            # messages published meanwhile are lost, so watchers must re-read then too.
            pubsub.connection.register_connect_callback(self._reconnected)
        done: set[str] = set()
        while todo := set(self._watches) - done:
            await pubsub.subscribe(*todo)
            done |= todo
        # No await since the last check: every channel watched now is subscribed, and
        # watchers arriving from here on subscribe themselves.
        self._ready = True
        self._wake_all()
        log.info("event_hub_connected", watched=len(self._watches))
        clock = asyncio.get_running_loop().time
        heard, pinged = clock(), None
        while not stop.is_set():
            message = await pubsub.get_message(timeout=READ_TIMEOUT)
            if message is not None:
                heard, pinged = clock(), None
                self._dispatch(message)
            elif pinged is not None and clock() - pinged >= PONG_TIMEOUT:
                raise RedisTimeoutError(f"no reply to PING in {PONG_TIMEOUT:g} s")
            elif pinged is None and clock() - heard >= PING_AFTER:
                await pubsub.ping()
                pinged = clock()

    def _dispatch(self, message: dict[str, object]) -> None:
        raw = message.get("channel")
        channel = raw.decode() if isinstance(raw, bytes) else str(raw)
        if message.get("type") == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
        elif message.get("type") == "message":
            for watch in self._watches.get(channel, ()):
                watch.wake()

    async def _reconnected(self, connection: object) -> None:
        log.info("event_hub_reconnected", watched=len(self._watches))
        self._wake_all()

    def _wake_all(self) -> None:
        for watchers in self._watches.values():
            for watch in watchers:
                watch.wake()
        for confirmed in self._confirmed.values():
            confirmed.set()

    async def _disconnect(self) -> None:
        self._ready = False
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            if pubsub.connection is not None:
                pubsub.connection.deregister_connect_callback(self._reconnected)
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await pubsub.aclose()
