"""shared.coalesce: script calls of one tick share a pipeline, each with its own answer,
against the suite's real redis-server (and a master with one replica for WAIT)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from devnet.redis_server import free_port
from shared import keys
from shared.coalesce import ScriptBatcher
from shared.redis import storage_full
from shared.replication import NotReplicated, Replication
from shared.store import TaskStore
from shared.tasks import Task, TaskType, new_task_id
from tests.fullredis import fill

#: Fails when its argument is "bad", else appends the argument to a list and answers it
#: with the list's new length: each caller can check it got its own reply.
ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad input') end
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
return {ARGV[1], n}
"""
#: Shorter than the 1000 ms default, only so that the unconfirmable case ends quickly.
SHORT_MS = 200


def _task() -> Task:
    return Task(task_id=new_task_id(), task_type=TaskType.TTS, language="en")


async def _calls(batcher: ScriptBatcher, script, values: list[str]) -> list:
    return await asyncio.gather(
        *(batcher.run(script, ["audio:test:echo"], [v]) for v in values),
        return_exceptions=True,
    )


async def test_concurrent_creates_each_get_their_own_task(redis):
    store = TaskStore(redis, result_ttl=100)
    tasks = [_task() for _ in range(20)]
    created = await asyncio.gather(*(store.create(t, t.task_id.encode()) for t in tasks))
    assert sorted(t.seq for t in created) == list(range(1, 21))
    for task in tasks:
        assert await store.get_input(task.task_id) == task.task_id.encode()
    assert await redis.xlen(keys.stream(tasks[0].priority)) == 20


async def test_each_caller_gets_its_own_reply_and_one_failure_fails_only_its_caller(redis):
    batcher = ScriptBatcher(redis)
    script = redis.register_script(ECHO)
    values = ["a", "b", "bad", "c"]
    replies = await _calls(batcher, script, values)
    assert isinstance(replies[2], ResponseError) and "bad input" in str(replies[2])
    good = [r for r in replies if not isinstance(r, Exception)]
    assert [r[0] for r in good] == [b"a", b"b", b"c"]
    # Sent in the callers' order, so the list positions follow it.
    assert [r[1] for r in good] == [1, 2, 3]
    assert await redis.lrange("audio:test:echo", 0, -1) == [b"a", b"b", b"c"]


async def test_noscript_after_script_flush_is_reloaded_and_resent(redis):
    batcher = ScriptBatcher(redis)
    script = redis.register_script(ECHO)
    await _calls(batcher, script, ["warm", "up"])  # loaded, then flushed as on a new master
    await redis.script_flush()
    replies = await _calls(batcher, script, ["x", "y", "bad"])
    assert [r[0] for r in replies[:2]] == [b"x", b"y"]
    assert isinstance(replies[2], ResponseError)
    assert await redis.lrange("audio:test:echo", 2, -1) == [b"x", b"y"]


async def test_a_full_redis_refuses_every_create_of_the_batch(small):
    store = TaskStore(small, result_ttl=60)
    await fill(small)
    results = await asyncio.gather(
        *(store.create(_task(), b"hello") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) and storage_full(r) for r in results)


async def test_redis_down_fails_every_caller_with_a_connection_error():
    async with Redis(port=free_port(), socket_connect_timeout=1) as down:
        batcher = ScriptBatcher(down)
        script = down.register_script(ECHO)
        replies = await _calls(batcher, script, ["a", "b"])
        single = await _calls(batcher, script, ["c"])
    assert all(isinstance(r, RedisConnectionError) for r in replies + single)


async def test_one_wait_confirms_the_whole_batch(sentinel_group, sentinel_master: Redis):
    store = TaskStore(sentinel_master, 60, replication=Replication(1))
    tasks = [_task() for _ in range(5)]
    await asyncio.gather(*(store.create(t, b"hello") for t in tasks))
    replica = next(port for port in sentinel_group.nodes if port != sentinel_group.first_master)
    async with Redis(port=replica) as client:
        # No polling: each create returned only once WAIT had the replica's acknowledgement.
        for task in tasks:
            assert await client.hget(keys.task(task.task_id), "status") == b"pending"


async def test_too_few_replicas_fail_each_write_of_the_batch(sentinel_master: Redis):
    batcher = ScriptBatcher(sentinel_master, Replication(2, SHORT_MS))
    script = sentinel_master.register_script(ECHO)
    replies = await _calls(batcher, script, ["a", "bad", "b"])
    assert isinstance(replies[1], ResponseError)  # its own error, not the WAIT's count
    for reply, value in ((replies[0], b"a"), (replies[2], b"b")):
        assert isinstance(reply, NotReplicated) and (reply.acked, reply.wanted) == (1, 2)
        assert reply.reply[0] == value  # what the master did
    with pytest.raises(NotReplicated):
        await batcher.run(script, ["audio:test:echo"], ["alone"])
