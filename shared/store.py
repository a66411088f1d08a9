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
from shared.replication import NO_REPLICATION, Replication
from shared.tasks import FINAL_STATUSES, PRIORITY_ORDER, Priority, Status, Task, TaskType, now

# KEYS: hash, input, pending index, all index, stream, sequence,
#       [owner's all index, owner's pending index], [probed streams..., durations list],
#       [guard]
# ARGV: task_id, input bytes, has owner (0/1), guard record ('' for none), guard ttl,
#       probe keys (streams + durations list; 0: no probe), duration samples,
#       the hash's fields as one JSON array [field, value, ...] (redis-py packs one
#       argument for less CPU than twenty)
# Returns {1, seq, entries in the probed streams, {durations}} when stored (the probe is
# read before this task is queued); {0, guard record} when the guard key already existed
# (then nothing is written).
_CREATE = """
if ARGV[4] ~= '' then
  local existing = redis.call('GET', KEYS[#KEYS])
  if existing then return {0, existing} end
end
local probe = tonumber(ARGV[6])
local ahead = 0
local durations = {}
if probe > 0 then
  local first = ARGV[3] == '1' and 9 or 7
  for i = first, first + probe - 2 do ahead = ahead + redis.call('XLEN', KEYS[i]) end
  durations = redis.call('LRANGE', KEYS[first + probe - 1], 0, tonumber(ARGV[7]) - 1)
end
local seq = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(cjson.decode(ARGV[8])))
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[7], seq, ARGV[1])
  redis.call('ZADD', KEYS[8], seq, ARGV[1])
end
redis.call('XADD', KEYS[5], '*', 'task_id', ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[#KEYS], ARGV[4], 'EX', ARGV[5]) end
return {1, seq, ahead, durations}
"""

# KEYS: hash, input, output, attempts, pending, processing, completed, failed, all, expiry,
#       [owner's all, pending, processing, completed, failed indexes, owner's expiry]
# ARGV: task_id, new status, now, ttl, expected statuses (comma list), has_output,
#       output, field, value, ...
# Returns 1 on change, 0 when the current status is not an expected one, -1 if no task.
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
local allowed = false
for s in string.gmatch(ARGV[5], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return 0 end
local index = {pending=KEYS[5], processing=KEYS[6], completed=KEYS[7], failed=KEYS[8]}
local new = ARGV[2]
local seq = redis.call('HGET', KEYS[1], 'seq')
local owned = #KEYS > 10
local own = {pending=KEYS[12], processing=KEYS[13], completed=KEYS[14], failed=KEYS[15]}
if cur ~= new then
  redis.call('ZREM', index[cur], ARGV[1])
  redis.call('ZADD', index[new], seq, ARGV[1])
  if owned then
    redis.call('ZREM', own[cur], ARGV[1])
    redis.call('ZADD', own[new], seq, ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'status', new, 'updated_at', ARGV[3])
if #ARGV > 7 then redis.call('HSET', KEYS[1], unpack(ARGV, 8)) end
if ARGV[6] == '1' then redis.call('SET', KEYS[3], ARGV[7]) end
if new == 'completed' or new == 'failed' then
  local ttl = tonumber(ARGV[4])
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
  local t = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[10], t + ttl, ARGV[1])
  -- Drop index entries of tasks whose data has expired (bounded work per call).
  local old = redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', t, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    for i = 5, 10 do redis.call('ZREM', KEYS[i], id) end
  end
  if owned then
    redis.call('ZADD', KEYS[16], t + ttl, ARGV[1])
    local mine = redis.call('ZRANGEBYSCORE', KEYS[16], '-inf', t, 'LIMIT', 0, 100)
    for _, id in ipairs(mine) do
      for i = 11, 16 do redis.call('ZREM', KEYS[i], id) end
    end
  end
end
return 1
"""


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
    """What a :class:`Probe` read."""

    ahead: int  # entries in the probed streams
    durations: list[bytes]  # raw samples, newest first


class TaskStore:
    """Reads and writes tasks. One instance per process, over a shared Redis pool."""

    def __init__(
        self, redis: Redis, result_ttl: int, replication: Replication = NO_REPLICATION
    ) -> None:
        self.redis = redis
        self.result_ttl = result_ttl
        # Creations and final status changes wait for REDIS_MIN_REPLICAS_ACK replicas (or raise
        # shared.replication.NotReplicated, the write being on the master only).
        self.replication = replication
        self._create = redis.register_script(_CREATE)
        self._transition = redis.register_script(_TRANSITION)

    async def create(self, task: Task, data: bytes) -> Task:
        """Store a new pending task and its input, index it and queue it, atomically."""
        created, _, _ = await self._store(task, data, None, None)
        return created

    async def create_probed(self, task: Task, data: bytes, probe: Probe) -> tuple[Task, Snapshot]:
        """:meth:`create`, reading ``probe`` in the same script (one round trip instead of
        two): the queue as it was just before this task joined it."""
        created, _, snapshot = await self._store(task, data, None, probe)
        assert snapshot is not None
        return created, snapshot

    async def create_once(self, task: Task, data: bytes, guard: Guard) -> bytes | None:
        """:meth:`create`, unless ``guard.key`` exists: then nothing is written and its
        value is returned. Otherwise ``guard.key`` is set to ``guard.record`` in the same
        script, so concurrent callers with one guard key create exactly one task."""
        _, existing, _ = await self._store(task, data, guard, None)
        return existing

    async def _store(
        self, task: Task, data: bytes, guard: Guard | None, probe: Probe | None
    ) -> tuple[Task, bytes | None, Snapshot | None]:
        fields = task.to_hash()
        fields.pop("seq", None)
        flat = json.dumps([item for pair in fields.items() for item in pair], ensure_ascii=False)
        owner_keys = (
            [keys.owner_index(task.owner), keys.owner_index(task.owner, Status.PENDING)]
            if task.owner
            else []
        )
        probe_keys = probe.keys() if probe else ()
        reply = await self.replication.run(
            self._create,
            keys=[
                keys.task(task.task_id),
                keys.task_input(task.task_id),
                keys.status_index(Status.PENDING),
                keys.ALL_TASKS,
                keys.stream(task.priority),
                keys.SEQUENCE,
                *owner_keys,
                *probe_keys,
                *([guard.key] if guard else []),
            ],
            args=[
                task.task_id,
                data,
                "1" if owner_keys else "0",
                guard.record if guard else b"",
                guard.ttl if guard else 0,
                len(probe_keys),
                probe.samples if probe else 0,
                flat,
            ],
        )
        if int(reply[0]) == 0:
            return task, reply[1], None
        task.seq = int(reply[1])
        snapshot = Snapshot(int(reply[2]), list(reply[3])) if probe else None
        return task, None, snapshot

    async def get(self, task_id: str) -> Task | None:
        raw = await self.redis.hgetall(keys.task(task_id))
        return Task.from_hash(raw) if raw else None

    async def get_input(self, task_id: str) -> bytes | None:
        return await self.redis.get(keys.task_input(task_id))

    async def get_output(self, task_id: str) -> bytes | None:
        return await self.redis.get(keys.task_output(task_id))

    async def transition(
        self,
        task_id: str,
        to: Status,
        *,
        expect: Iterable[Status],
        fields: dict[str, Any] | None = None,
        output: bytes | None = None,
        at: float | None = None,
        replicated: bool = True,
    ) -> bool:
        """Move a task to ``to`` only if its status is one of ``expect``; True if it moved.

        Final statuses set ``completed_at``, start the RESULT_TTL expiry of the task and its
        data, and trim expired entries from the indexes. A final status waits for
        REDIS_MIN_REPLICAS_ACK replicas unless ``replicated=False``; ``processing`` never
        does (losing that mark in a failover is harmless: a final status may follow
        ``pending`` as well).
        """
        t = now() if at is None else at
        extra = {k: str(v) for k, v in (fields or {}).items() if v is not None}
        if to in FINAL_STATUSES:
            extra.setdefault("completed_at", str(t))
        flat = [item for pair in extra.items() for item in pair]
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
        run = self.replication if replicated and to in FINAL_STATUSES else NO_REPLICATION
        moved = await run.run(
            self._transition,
            keys=[
                keys.task(task_id),
                keys.task_input(task_id),
                keys.task_output(task_id),
                keys.task_attempts(task_id),
                *(keys.status_index(s) for s in Status),
                keys.ALL_TASKS,
                keys.EXPIRY_INDEX,
                *owner_keys,
            ],
            args=[
                task_id,
                to.value,
                repr(t),
                self.result_ttl,
                ",".join(Status(s).value for s in expect),
                "1" if output is not None else "0",
                output if output is not None else b"",
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
