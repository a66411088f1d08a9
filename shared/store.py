"""Task storage on Redis: atomic create, conditional status changes, indexed listing.

Every write that spans several keys runs as one Lua script, so a crash or a racing
replica never leaves a task half-stored, in two status indexes, or completed twice.
A task with an owner (the gateway caller's identity) is indexed per owner too, by the same
scripts, so an owner's listing follows status changes exactly like the global one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from redis.asyncio import Redis

from shared import keys
from shared import storescripts as scripts
from shared.blobs import Blob, BlobStore
from shared.buckets import Bucket, Token, TokenRefused, bucket_from_reply
from shared.coalesce import ScriptBatcher
from shared.replication import NO_REPLICATION, NotReplicated, Replication
from shared.taskdata import BytesBlob, TaskData
from shared.tasks import FINAL_STATUSES, PRIORITY_ORDER, Priority, Status, Task, TaskType, now
from shared.webhookevents import WebhookDelivery

#: The status order of the index keys TRANSITION is given, and which statuses are final.
_STATUS_LIST = ",".join(s.value for s in Status)
_FINAL_LIST = ",".join(s.value for s in Status if s in FINAL_STATUSES)


@dataclass(frozen=True)
class Guard:
    """A key that makes :meth:`TaskStore.create_once` store at most one task."""

    key: str
    record: bytes  # the value ``key`` gets when the task is created
    ttl: int  # seconds ``key`` lives


@dataclass(frozen=True)
class Probe:
    """Queue state :meth:`TaskStore.create_probed` reads just before queuing the task."""

    streams: tuple[Priority, ...]  # priorities whose stream entries are counted
    task_type: TaskType  # whose recent durations (keys.durations) are read
    samples: int  # at most this many durations, newest first

    def keys(self) -> tuple[str, ...]:
        """The streams' keys, then the durations list's."""
        return _probe_keys(self.streams, self.task_type)


@lru_cache(maxsize=64)
def _probe_keys(streams: tuple[Priority, ...], task_type: TaskType) -> tuple[str, ...]:
    # A few fixed combinations (priority x task type), built once instead of per task.
    return (*(keys.stream(p) for p in streams), keys.durations(task_type))


@dataclass(frozen=True)
class Snapshot:
    """What a :class:`Probe` read (and, with a :class:`Token`, the bucket after it)."""

    ahead: int  # entries in the probed streams
    durations: list[bytes]  # raw samples, newest first
    bucket: Bucket | None = None


class TaskStore:
    """Reads and writes tasks. One instance per process, over a shared Redis pool.

    Inputs and outputs over :data:`shared.taskdata.INLINE_MAX` bytes (and TTS audio) go
    to ``blobs``, the rest to Redis (:class:`shared.taskdata.TaskData`). Final statuses
    schedule the task's blobs for deletion: inputs ``input_retention`` seconds later,
    outputs after ``result_ttl`` (:mod:`shared.janitor` deletes them when due).
    """

    def __init__(
        self,
        redis: Redis,
        result_ttl: int,
        blobs: BlobStore | None = None,
        *,
        input_retention: int = 0,
        replication: Replication = NO_REPLICATION,
    ) -> None:
        self.redis = redis
        self.result_ttl = result_ttl
        self.blobs = blobs
        self.input_retention = input_retention
        # Creations and final status changes wait for REDIS_MIN_REPLICAS_ACK replicas (or
        # raise shared.replication.NotReplicated, the write being on the master only).
        self.replication = replication
        # Creates of one tick share a round trip (shared.coalesce), each its own script.
        self._batcher = ScriptBatcher(redis, replication)
        self.data = TaskData(redis, blobs)
        self._create = redis.register_script(scripts.CREATE)
        self._create_limited = redis.register_script(scripts.CREATE_LIMITED)
        self._transition = redis.register_script(scripts.TRANSITION)

    async def create(self, task: Task, data: bytes | bytearray | None) -> Task:
        """Store a new pending task and its input, index it and queue it, atomically.

        ``data`` None: the input is already in the blob store, named by ``task.input_blob``
        (a streamed upload). Either way the input blob is deleted if the task is not
        created (Redis failed, or :meth:`create_once` found its guard)."""
        created, _, _ = await self._store(task, data, None, None)
        return created

    async def create_probed(
        self, task: Task, data: bytes | bytearray | None, probe: Probe, token: Token | None = None
    ) -> tuple[Task, Snapshot]:
        """:meth:`create`, reading ``probe`` in the same script (one round trip instead of
        two): the queue as it was just before this task joined it. With a ``token``, only
        if its bucket gives it, taken in that script too (else :class:`TokenRefused`)."""
        created, _, snapshot = await self._store(task, data, None, probe, token)
        assert snapshot is not None
        return created, snapshot

    async def create_once(
        self, task: Task, data: bytes | bytearray | None, guard: Guard
    ) -> bytes | None:
        """:meth:`create`, unless ``guard.key`` exists: then nothing is written and its
        value is returned. Otherwise ``guard.key`` is set to ``guard.record`` in the same
        script, so concurrent callers with one guard key create exactly one task."""
        _, existing, _ = await self._store(task, data, guard, None)
        return existing

    async def _store(
        self,
        task: Task,
        data: bytes | bytearray | None,
        guard: Guard | None,
        probe: Probe | None,
        token: Token | None = None,
    ) -> tuple[Task, bytes | None, Snapshot | None]:
        inline = data is not None and not await self.data.place_input(task, data)
        fields = task.to_hash()
        fields.pop("seq", None)
        flat = json.dumps([item for pair in fields.items() for item in pair], ensure_ascii=False)
        owner_keys = (
            [keys.owner_index(task.owner), keys.owner_index(task.owner, Status.PENDING)]
            if task.owner
            else []
        )
        probe_keys = probe.keys() if probe else ()
        bucket = [token.bucket] if token else []
        limits = [token.capacity, repr(token.per_second), token.cost] if token else []
        try:
            reply = await self._batcher.run(
                self._create_limited if token else self._create,
                keys=[
                    keys.task(task.task_id),
                    keys.task_input(task.task_id),
                    keys.status_index(Status.PENDING),
                    keys.ALL_TASKS,
                    keys.stream(task.priority),
                    keys.SEQUENCE,
                    keys.task_events(task.task_id),
                    *owner_keys,
                    *probe_keys,
                    *([guard.key] if guard else []),
                    *bucket,
                ],
                args=[
                    task.task_id,
                    data if inline and data is not None else b"",
                    "1" if owner_keys else "0",
                    guard.record if guard else b"",
                    guard.ttl if guard else 0,
                    len(probe_keys),
                    probe.samples if probe else 0,
                    flat,
                    "1" if inline else "0",
                    keys.task_channel(task.task_id),
                    *limits,
                ],
            )
        except NotReplicated as exc:
            await self.data.discard(task.input_blob)
            if int(exc.reply[0]) == 2:  # refused: only the bucket was written, nothing to undo
                raise TokenRefused(bucket_from_reply(exc.reply[1:4])) from None
            raise
        except BaseException:
            await self.data.discard(task.input_blob)
            raise
        if int(reply[0]) != 1:
            await self.data.discard(task.input_blob)
            if int(reply[0]) == 2:
                raise TokenRefused(bucket_from_reply(reply[1:4]))
            return task, reply[1], None
        task.seq = int(reply[1])
        given = bucket_from_reply(reply[4:7]) if token else None
        snapshot = Snapshot(int(reply[2]), list(reply[3]), given) if probe else None
        return task, None, snapshot

    async def get(self, task_id: str) -> Task | None:
        raw = await self.redis.hgetall(keys.task(task_id))
        return Task.from_hash(raw) if raw else None

    async def get_input(self, task_id: str) -> bytes | None:
        """The whole input (None if the task or its input is gone); big inputs are better
        streamed with :meth:`open_input`."""
        task = await self.get(task_id)
        return None if task is None else await self.data.read_input(task)

    async def get_output(self, task_id: str) -> bytes | None:
        """The whole output (None if there is none, or it expired); a large one (see
        ``Task.output_size``) is better streamed with :meth:`open_output`."""
        task = await self.get(task_id)
        return None if task is None else await self.data.read_output(task)

    async def open_input(self, task: Task) -> Blob | BytesBlob | None:
        """The task's input as a stream with a known size; None if it is gone."""
        return await self.data.open_input(task)

    async def open_output(self, task: Task) -> Blob | BytesBlob | None:
        """The task's output as a stream with a known size; None if there is none."""
        return await self.data.open_output(task)

    async def release_input(self, task: Task) -> None:
        """Delete a final task's input now if INPUT_RETENTION is 0 (the transition already
        scheduled it, so a failure here only delays it to the next sweep)."""
        if task.input_blob and self.input_retention == 0:
            await self.data.release(task.input_blob)

    async def transition(
        self,
        task_id: str,
        to: Status,
        *,
        expect: Iterable[Status],
        fields: dict[str, Any] | None = None,
        output: bytes | None = None,
        binary_output: bool = False,
        at: float | None = None,
        replicated: bool = True,
        webhook: WebhookDelivery | None = None,
    ) -> bool:
        """Move a task to ``to`` only if its status is one of ``expect``; True if it moved.

        Final statuses set ``completed_at``, start the RESULT_TTL expiry of the task and its
        data, schedule its blobs' deletion and trim expired entries from the indexes. An
        ``output`` goes to the blob store first when it is large or ``binary_output``
        (audio); it is deleted again if the task does not move. A final status waits for
        REDIS_MIN_REPLICAS_ACK replicas unless ``replicated=False``; ``processing`` never
        does (losing that mark in a failover is harmless: a final status may follow
        ``pending`` as well). ``webhook`` is queued in the same script, only if it moves.
        """
        t = now() if at is None else at
        extra = {k: str(v) for k, v in (fields or {}).items() if v is not None}
        if to in FINAL_STATUSES:
            extra.setdefault("completed_at", str(t))
        blob = None
        if output is not None:
            blob = await self.data.place_output(task_id, output, binary_output)
            extra["output_size"] = str(len(output))
            if blob is not None:
                extra["output_blob"] = blob
        inline = output is not None and blob is None
        flat = [item for pair in extra.items() for item in pair]
        try:
            moved = await self._run_transition(
                task_id, to, expect, t, inline, output, flat, replicated, webhook
            )
        except BaseException:
            await self.data.discard(blob)
            raise
        if not moved:
            await self.data.discard(blob)
        return moved

    async def _run_transition(
        self,
        task_id: str,
        to: Status,
        expect: Iterable[Status],
        t: float,
        inline: bool,
        output: bytes | None,
        flat: list[str],
        replicated: bool,
        webhook: WebhookDelivery | None,
    ) -> bool:
        # The owner never changes after creation, so reading it first cannot race.
        owner = await self.redis.hget(keys.task(task_id), "owner")
        owner_keys = []
        if owner:
            name = owner.decode()
            owner_keys = [
                keys.owner_index(name),
                *(keys.owner_index(name, s) for s in Status),
                keys.owner_expiry(name),
            ]
        hook_keys, hook = [], ""
        if webhook is not None:
            hook_keys = [keys.webhook(webhook.id), keys.WEBHOOK_QUEUE]
            hook = json.dumps({"id": webhook.id, "fields": webhook.flat()})
        run = self.replication if replicated and to in FINAL_STATUSES else NO_REPLICATION
        moved = await run.run(
            self._transition,
            keys=[
                keys.task(task_id),
                keys.task_input(task_id),
                keys.task_output(task_id),
                keys.task_attempts(task_id),
                keys.task_events(task_id),
                keys.ALL_TASKS,
                keys.EXPIRY_INDEX,
                keys.BLOB_EXPIRY,
                *(keys.status_index(s) for s in Status),
                *owner_keys,
                *hook_keys,
            ],
            args=[
                task_id,
                to.value,
                repr(t),
                self.result_ttl,
                ",".join(Status(s).value for s in expect),
                "1" if inline else "0",
                output if inline and output is not None else b"",
                self.input_retention,
                _STATUS_LIST,
                _FINAL_LIST,
                "1" if owner_keys else "0",
                hook,
                keys.task_channel(task_id),
                *flat,
            ],
        )
        return int(moved) == 1

    async def withdraw(self, task_id: str, reason: str, guard_key: str | None = None) -> bool:
        """Fail a task whose submission was answered 503 after it had been written (its
        replication was not confirmed): a final status stops validators from starting it
        and makes a racing completion lose; the cleared callback_url means no webhook; the
        dropped Idempotency-Key claim lets a retry create it anew. Not waited for: the
        caller already knows the replicas are not keeping up. False if it was final."""
        moved = await self.transition(
            task_id,
            Status.FAILED,
            expect=[Status.PENDING, Status.PROCESSING],
            fields={"error": reason, "callback_url": ""},
            replicated=False,
        )
        if guard_key is not None:
            await self.redis.delete(guard_key)
        return moved

    async def list(
        self,
        status: Status | None = None,
        limit: int = 10,
        cursor: int | None = None,
        *,
        owner: str | None = None,
    ) -> tuple[list[Task], int | None]:
        """Newest first, of every task or only ``owner``'s. ``cursor`` is the seq to continue
        below; returns (tasks, next)."""
        if owner is not None:
            index = keys.owner_index(owner, status)
        else:
            index = keys.status_index(status) if status else keys.ALL_TASKS
        top = f"({cursor}" if cursor is not None else "+inf"
        rows = await self.redis.zrevrangebyscore(
            index, top, "-inf", start=0, num=limit + 1, withscores=True
        )
        page, more = rows[:limit], len(rows) > limit
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id, _ in page:
                pipe.hgetall(keys.task(task_id.decode()))
            hashes = await pipe.execute()
        tasks = [Task.from_hash(h) for h in hashes if h]
        gone = [tid for (tid, _), h in zip(page, hashes, strict=True) if not h]
        if gone:
            await self.redis.zrem(index, *gone)
        next_cursor = int(page[-1][1]) if more and page else None
        return tasks, next_cursor

    async def counts(self) -> dict[str, int]:
        """Number of tasks in each status (within RESULT_TTL)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for s in Status:
                pipe.zcard(keys.status_index(s))
            values = await pipe.execute()
        return {s.value: int(v) for s, v in zip(Status, values, strict=True)}

    async def queue_sizes(self) -> dict[str, int]:
        """Entries per priority stream: waiting or in flight (finished ones are deleted)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in PRIORITY_ORDER:
                pipe.xlen(keys.stream(p))
            values = await pipe.execute()
        return {p.value: int(v) for p, v in zip(PRIORITY_ORDER, values, strict=True)}
