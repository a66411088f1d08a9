"""Per-owner indexes and guarded creation: kept by the same scripts as the global indexes."""

from __future__ import annotations

import asyncio

from shared import keys
from shared.store import Guard, TaskStore
from shared.tasks import Status, Task, TaskType, new_task_id


def make_task(owner: str | None = None) -> Task:
    return Task(task_id=new_task_id(), task_type=TaskType.TTS, language="en", owner=owner)


async def test_owner_indexes_follow_creation_and_every_transition(redis):
    store = TaskStore(redis, result_ttl=100)
    mine = await store.create(make_task("key:ak_1"), b"a")
    theirs = await store.create(make_task("ip:10.0.0.1"), b"b")
    ownerless = await store.create(make_task(), b"c")
    assert await redis.zrange(keys.owner_index("key:ak_1"), 0, -1) == [mine.task_id.encode()]
    assert await redis.zscore(keys.owner_index("key:ak_1", Status.PENDING), mine.task_id) == 1

    await store.transition(mine.task_id, Status.PROCESSING, expect=[Status.PENDING])
    await store.transition(mine.task_id, Status.COMPLETED, expect=[Status.PROCESSING], output=b"x")
    for status in (Status.PENDING, Status.PROCESSING):
        assert await redis.zcard(keys.owner_index("key:ak_1", status)) == 0
    page, _ = await store.list(Status.COMPLETED, owner="key:ak_1")
    assert [t.task_id for t in page] == [mine.task_id]
    page, _ = await store.list(owner="ip:10.0.0.1")
    assert [t.task_id for t in page] == [theirs.task_id]
    # The global indexes still hold everyone's tasks; ownerless ones only there.
    page, _ = await store.list(limit=10)
    assert {t.task_id for t in page} == {mine.task_id, theirs.task_id, ownerless.task_id}
    assert await redis.keys("audio:owner:None*") == []


async def test_an_owners_expired_entries_are_trimmed_when_its_next_task_finishes(redis):
    store = TaskStore(redis, result_ttl=1)
    old = await store.create(make_task("ip:10.0.0.1"), b"a")
    new = await store.create(make_task("ip:10.0.0.1"), b"b")
    await store.transition(old.task_id, Status.FAILED, expect=[Status.PENDING], at=1000.0)
    assert await redis.zscore(keys.owner_expiry("ip:10.0.0.1"), old.task_id) == 1001
    await store.transition(new.task_id, Status.FAILED, expect=[Status.PENDING], at=2000.0)
    for index in (keys.owner_index("ip:10.0.0.1"), keys.owner_index("ip:10.0.0.1", "failed")):
        assert await redis.zscore(index, old.task_id) is None
        assert await redis.zscore(index, new.task_id) is not None


async def test_create_once_stores_one_task_per_guard_even_when_raced(redis):
    store = TaskStore(redis, result_ttl=100)
    guard_key = "audio:test:guard"
    tasks = [make_task("ip:10.0.0.1") for _ in range(20)]
    results = await asyncio.gather(
        *(store.create_once(t, b"x", Guard(guard_key, t.task_id.encode(), 60)) for t in tasks)
    )
    created = [t for t, r in zip(tasks, results, strict=True) if r is None]
    assert len(created) == 1
    assert {r for r in results if r is not None} == {created[0].task_id.encode()}
    assert await redis.get(guard_key) == created[0].task_id.encode()
    assert 0 < await redis.ttl(guard_key) <= 60
    assert await redis.zcard(keys.ALL_TASKS) == 1
    assert await redis.xlen(keys.stream("normal")) == 1
