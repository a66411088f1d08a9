"""The validator on the blob store, for both backends: inputs read from it and deleted at
the final status (or kept INPUT_RETENTION seconds), outputs written to it, the janitor's
due deletions and orphan sweep, and tasks that wait as pending while the store is away (and
/health saying so)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from devnet import audio
from devnet.miner import timed_segments
from shared import keys
from shared.janitor import BlobJanitor
from shared.store import TaskStore
from shared.taskdata import INLINE_MAX
from shared.tasks import Status, Task, TaskType, new_task_id
from tests.blobstores import MotoServer, largest_redis_value, make_backend
from tests.validator.conftest import (
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)

SPOKEN = "blobs are kept out of redis memory"


def _env(backend) -> dict[str, str]:
    return {name.lower(): value for name, value in backend.env.items()}


async def _health(port: int) -> tuple[int, str]:
    """The validator's /health status code and blob store state."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/health") as resp:
            return resp.status, (await resp.json())["blob_store"]


async def _audio_task(redis, backend, data: bytes) -> Task:
    """A transcription task as the gateway stores it: the audio in the blob store."""
    task = Task(new_task_id(), TaskType.TRANSCRIPTION, "en", input_size=len(data))
    upload = backend.store.upload(keys.input_blob(task.task_id))
    await upload.write(data)
    await upload.commit()
    task.input_blob = keys.input_blob(task.task_id)
    return await TaskStore(redis, 3600, backend.store).create(task, None)


async def test_input_deleted_at_final_status_and_tts_output_stored(
    redis, redis_url, tmp_path, start_miner, validator_wallet, backend
):
    miner = await start_miner(0)
    speech = await _audio_task(redis, backend, audio.synthesize(SPOKEN))
    # A long recording's transcript: the text fits in Redis (about 50 KB), its 1,300 timed
    # segments (about 110 KB of JSON) do not.
    long_wav = audio.synthesize(" ".join([SPOKEN] * 1500), 60)
    long = await _audio_task(redis, backend, long_wav)
    store = TaskStore(redis, 3600, backend.store)
    tts = await store.create(Task(new_task_id(), TaskType.TTS, "en"), SPOKEN.encode())
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [miner]), **_env(backend)
    )
    async with running(settings, validator_wallet):
        done = await wait_final(redis, speech.task_id)
        spoken = await wait_final(redis, tts.task_id)
        transcribed = await wait_final(redis, long.task_id)
    assert (done.status, spoken.status) == (Status.COMPLETED, Status.COMPLETED)
    assert transcribed.status == Status.COMPLETED, transcribed.error
    size, where = await largest_redis_value(redis)
    assert size <= INLINE_MAX, where
    # The long transcript's segments went to the store instead, and read back whole.
    assert "segments" not in transcribed.result
    segments = await store.data.read_segments(transcribed)
    assert segments == timed_segments(" ".join([SPOKEN] * 1500), 60)
    # The audio inputs went with the final status (INPUT_RETENTION=0); the TTS output and
    # the segments are blobs, scheduled to go after RESULT_TTL with their tasks.
    assert await backend.names() == sorted([spoken.output_blob, transcribed.segments_blob])
    due = await redis.zscore(keys.BLOB_EXPIRY, transcribed.segments_blob)
    assert due == transcribed.completed_at + settings.result_ttl
    assert await store.get_output(done.task_id) == SPOKEN.encode()
    assert audio.embedded_text(await store.get_output(tts.task_id)) == SPOKEN
    due = await redis.zscore(keys.BLOB_EXPIRY, spoken.output_blob)
    assert due == spoken.completed_at + settings.result_ttl
    assert await redis.zscore(keys.BLOB_EXPIRY, speech.input_blob) is None


async def test_input_retention_keeps_the_input_then_the_janitor_deletes_it(
    redis, redis_url, tmp_path, start_miner, validator_wallet, backend
):
    miner = await start_miner(0)
    task = await _audio_task(redis, backend, audio.synthesize(SPOKEN))
    # INPUT_RETENTION changed from 0 to keep inputs an hour after the final status.
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [miner]), input_retention=3600,
        **_env(backend),
    )  # fmt: skip
    async with running(settings, validator_wallet):
        done = await wait_final(redis, task.task_id)
    assert await backend.names() == [task.input_blob]
    due = await redis.zscore(keys.BLOB_EXPIRY, task.input_blob)
    assert due == done.completed_at + 3600
    janitor = BlobJanitor(redis, backend.store, interval=60, orphan_age=3600, owner="t")
    assert await janitor.delete_due(at=due - 1) == 0
    assert await janitor.delete_due(at=due) == 1
    assert await backend.names() == []
    assert await redis.zcard(keys.BLOB_EXPIRY) == 0


async def test_orphan_sweep(redis, backend):
    store = TaskStore(redis, 3600, backend.store)
    live = await _audio_task(redis, backend, b"RIFF-live")
    await backend.store.put(keys.input_blob(new_task_id()), b"no task")  # crash leftover
    await backend.store.put(keys.output_blob(live.task_id, "lost"), b"lost race")
    await backend.store.put(keys.segments_blob(live.task_id, "lost"), b"[]")  # lost race
    kept = keys.segments_blob(live.task_id, "won")
    await backend.store.put(kept, b"[]")
    assert await store.transition(
        live.task_id, Status.PROCESSING, expect=[Status.PENDING], fields={"segments_blob": kept}
    )
    janitor = BlobJanitor(redis, backend.store, interval=60, orphan_age=3600, owner="t")
    # Young blobs are spared: an upload may be under way, a task about to be created.
    assert await janitor.sweep_orphans() == 0
    assert await janitor.sweep_orphans(at=time.time() + 3601) == 3
    assert await backend.names() == sorted([live.input_blob, kept])


async def test_task_waits_pending_while_the_store_is_away(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    server = MotoServer().start()
    backend = await make_backend("s3", tmp_path, server)
    try:
        miner = await start_miner(0)
        task = await _audio_task(redis, backend, audio.synthesize(SPOKEN))
        server.stop()
        settings = validator_settings(
            redis_url, write_miners(tmp_path / "m.json", [miner]), **_env(backend)
        )
        store = TaskStore(redis, 3600, backend.store)
        async with running(settings, validator_wallet):
            # Taken, found unreadable, put back to pending; no attempt spent on it.
            async def parked() -> bool:
                status = await redis.hget(keys.task(task.task_id), "status")
                return status == b"pending" and await redis.hexists(
                    keys.task(task.task_id), "updated_at"
                )

            await eventually(parked)
            await asyncio.sleep(3)  # still waiting, not failed, however long it lasts
            waiting = await store.get(task.task_id)
            assert (waiting.status, waiting.attempts) == (Status.PENDING, 0)
            assert not miner.activity.accepted
            # The validator's /health says so (still 200: waiting is not failing).
            assert await _health(settings.validator_port) == (200, "unavailable")
            server.start()
            done = await wait_final(redis, task.task_id, within=40)
            assert await _health(settings.validator_port) == (200, "ok")
        assert done.status is Status.COMPLETED, done.error
        assert await store.get_output(task.task_id) == SPOKEN.encode()
        assert await backend.names() == []
    finally:
        server.stop()
        await backend.store.close()
