from shared import keys
from shared.store import Probe, TaskStore
from shared.tasks import Priority, Status, Task, TaskType, new_task_id, public_view


def make_task(**kw) -> Task:
    return Task(
        task_id=new_task_id(), task_type=kw.pop("task_type", TaskType.TTS), language="en", **kw
    )


async def test_create_indexes_and_queues_atomically(redis):
    store = TaskStore(redis, result_ttl=100)
    task = await store.create(make_task(priority=Priority.HIGH), b"hello")
    assert task.seq == 1
    assert await store.get_input(task.task_id) == b"hello"
    assert await redis.zscore(keys.status_index(Status.PENDING), task.task_id) == 1
    entries = await redis.xrange(keys.stream(Priority.HIGH))
    assert [e[1] for e in entries] == [{b"task_id": task.task_id.encode()}]
    assert (await store.get(task.task_id)).status is Status.PENDING
    assert await store.queue_sizes() == {"urgent": 0, "high": 1, "normal": 0, "low": 0}


async def test_transition_is_conditional_and_completes_once(redis):
    store = TaskStore(redis, result_ttl=100)
    task = await store.create(make_task(), b"text")
    assert await store.transition(task.task_id, Status.PROCESSING, expect=[Status.PENDING])
    done = dict(fields={"result": '{"miner_uid": 3}'}, output=b"wav")
    assert await store.transition(
        task.task_id, Status.COMPLETED, expect=[Status.PROCESSING], **done
    )
    assert not await store.transition(
        task.task_id, Status.COMPLETED, expect=[Status.PROCESSING], **done
    )
    assert await store.counts() == {
        "pending": 0,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    stored = await store.get(task.task_id)
    assert stored.completed_at is not None and stored.result == {"miner_uid": 3}
    view = public_view(stored, await store.get_output(task.task_id))
    assert view["result"]["output_data"] == "d2F2" and view["result"]["miner_uid"] == 3
    for key in (keys.task(task.task_id), keys.task_output(task.task_id)):
        assert 0 < await redis.ttl(key) <= 100
    # INPUT_RETENTION=0 (the default): the input goes with the final status.
    assert await redis.exists(keys.task_input(task.task_id)) == 0
    assert await store.transition("missing", Status.FAILED, expect=list(Status)) is False


async def test_input_retention_keeps_the_input_that_long(redis):
    store = TaskStore(redis, result_ttl=100, input_retention=30)
    task = await store.create(make_task(), b"text")
    assert await store.transition(task.task_id, Status.FAILED, expect=[Status.PENDING])
    assert 0 < await redis.ttl(keys.task_input(task.task_id)) <= 30


async def test_list_newest_first_with_cursor_and_expired_entries_trimmed(redis):
    store = TaskStore(redis, result_ttl=1)
    ids = [(await store.create(make_task(), b"x")).task_id for _ in range(5)]
    page, cursor = await store.list(limit=2)
    assert [t.task_id for t in page] == [ids[4], ids[3]]
    page2, cursor2 = await store.list(limit=2, cursor=cursor)
    assert [t.task_id for t in page2] == [ids[2], ids[1]]
    page3, cursor3 = await store.list(limit=2, cursor=cursor2)
    assert [t.task_id for t in page3] == [ids[0]] and cursor3 is None
    # Finishing a task long after an earlier one expired trims the earlier one's entries.
    await store.transition(ids[0], Status.FAILED, expect=[Status.PENDING], at=1000.0)
    await store.transition(ids[1], Status.FAILED, expect=[Status.PENDING], at=2000.0)
    assert await redis.zscore(keys.ALL_TASKS, ids[0]) is None
    assert await redis.zscore(keys.ALL_TASKS, ids[1]) is not None


async def test_create_stores_every_field_exactly(redis):
    # The fields travel to the script as one JSON array: quotes, backslashes, control
    # characters and non-ASCII text must come back byte for byte.
    store = TaskStore(redis, result_ttl=100)
    odd = 'ünï "côde" \\ \n\t\x01 😀 end'
    task = await store.create(
        make_task(owner=f"key:{odd}", callback_url=f"https://x.test/{odd}"), b"in"
    )
    stored = await store.get(task.task_id)
    assert stored.owner == f"key:{odd}"
    assert stored.callback_url == f"https://x.test/{odd}"
    assert stored.to_hash() | {"seq": "0"} == task.to_hash() | {"seq": "0"}


async def test_create_probed_reads_the_queue_as_it_was_before_the_task(redis):
    store = TaskStore(redis, result_ttl=100)
    await store.create(make_task(priority=Priority.URGENT), b"a")
    await store.create(make_task(priority=Priority.LOW), b"b")
    await redis.rpush(keys.durations(TaskType.TTS), "2.5", "3.5", "9")
    probe = Probe((Priority.URGENT, Priority.HIGH, Priority.NORMAL), TaskType.TTS, samples=2)
    task, snapshot = await store.create_probed(make_task(), b"c", probe)
    assert task.seq == 3
    assert snapshot.ahead == 1  # the urgent task; the low one and this one not
    assert snapshot.durations == [b"2.5", b"3.5"]
    assert await store.queue_sizes() == {"urgent": 1, "high": 0, "normal": 1, "low": 1}


async def test_a_create_sent_again_queues_the_task_once(redis):
    """redis-py resends a command whose reply a dropped connection lost; the create script
    may thus run twice for one task, and must queue it once."""
    store = TaskStore(redis, result_ttl=100)
    task = make_task()
    first = await store.create(task, b"hello")
    again = await store.create(task, b"hello")
    assert again.seq == first.seq == 1
    assert await redis.xlen(keys.stream(Priority.NORMAL)) == 1
    assert await redis.get(keys.SEQUENCE) == b"1"
