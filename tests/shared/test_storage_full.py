"""A full Redis (maxmemory reached, noeviction): its refusals are recognised, the create
script stores nothing, and the memory figures health reports are right."""

from __future__ import annotations

import pytest
from redis.exceptions import RedisError, ResponseError

from shared import keys
from shared.redis import memory_use, storage_full
from shared.store import Guard, Probe, TaskStore
from shared.tasks import Priority, Task, TaskType, new_task_id
from tests.fullredis import MAXMEMORY, fill, make_room, snapshot


def _task(owner: str | None = "key:ak_12345678") -> Task:
    return Task(
        task_id=new_task_id(),
        task_type=TaskType.TTS,
        language="en",
        priority=Priority.NORMAL,
        input_size=5,
        owner=owner,
    )


async def _error(call) -> RedisError:
    with pytest.raises(RedisError) as caught:
        await call
    return caught.value


async def test_every_form_of_the_refusal_is_recognised(small):
    await fill(small)
    # A plain command, a MULTI (Redis refuses even reads queued in one) and a script.
    plain = await _error(small.set("k", "v"))
    async with small.pipeline(transaction=True) as pipe:
        pipe.get("k")
        multi = await _error(pipe.execute())
    script = await _error(small.eval("return redis.call('INCR', KEYS[1])", 1, "n"))
    assert type(script) is ResponseError  # Redis 6.2 wraps it: recognised by its words
    assert all(storage_full(e) for e in (plain, multi, script))
    # What still works when full: reads, deletions and acknowledgements.
    assert await small.get("filler:0") == b"x" * 1024
    assert await small.xack("audio:stream:normal", keys.CONSUMER_GROUP, "1-0") == 0
    # Other errors are not mistaken for it.
    await make_room(small)
    await small.set("text", "v")
    wrong_type = await _error(small.hset("text", "f", "v"))
    bad_script = await _error(small.eval("return redis.call('NOPE')", 0))
    assert not storage_full(wrong_type) and not storage_full(bad_script)
    assert not storage_full(ConnectionError("down"))


@pytest.mark.parametrize("variant", ["create", "probed", "once", "once_no_owner"])
async def test_the_create_script_stores_nothing_when_full(small, variant):
    store = TaskStore(small, result_ttl=60)
    await store.create(_task(), b"first")  # earlier data, which must stay as it is
    await fill(small)
    before = await snapshot(small)
    task = _task(None if variant == "once_no_owner" else "key:ak_12345678")
    if variant == "create":
        call = store.create(task, b"hello")
    elif variant == "probed":
        probe = Probe((Priority.URGENT, Priority.HIGH, Priority.NORMAL), TaskType.TTS, 5)
        call = store.create_probed(task, b"hello", probe)
    else:
        call = store.create_once(task, b"hello", Guard("audio:idempotency:x:y", b"{}", 60))
    assert storage_full(await _error(call))
    assert await snapshot(small) == before
    # Once Redis has room again the same task is stored whole.
    await make_room(small)
    await store.create(task, b"hello")
    assert (await store.get(task.task_id)).seq == 2
    assert await store.get_input(task.task_id) == b"hello"


async def test_memory_figures(small, redis):
    unlimited = await memory_use(redis)  # the suite's Redis runs without a limit
    assert unlimited.maxmemory == 0 and unlimited.ratio is None and unlimited.used_memory > 0
    limited = await memory_use(small)
    assert limited.maxmemory == MAXMEMORY and limited.policy == "noeviction"
    assert 0 < limited.ratio < 1
    await fill(small)
    full = await memory_use(small)
    assert full.ratio > 1 and full.used_memory > full.maxmemory
    assert full.as_dict() == {
        "used_memory": full.used_memory,
        "maxmemory": full.maxmemory,
        "ratio": round(full.used_memory / full.maxmemory, 4),
        "maxmemory_policy": "noeviction",
    }
