"""The devnet stack on each blob backend (a directory; S3 through moto's standalone server
on loopback): audio and TTS tasks end to end, inputs gone at the final status, outputs
served from the store, the validator's peak memory for one 50 MB transcription, and no
Redis value over 64 KiB afterwards.

The stack runs at the shipped defaults (not the e2e suite's short timings: a 50 MB task
is sent to four miners, which must not time out on a busy machine) except for BLOB_STORE
and the S3 settings, which point at a fresh directory or bucket so leftovers can be checked,
and LOG_LEVEL=WARNING to keep the logs short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from devnet import audio
from devnet.stack import Ports, Stack
from shared.taskdata import INLINE_MAX
from tests.blobstores import Backend, largest_redis_value
from tests.gateway.test_upload_memory import MIB, peak, reset_peak

from .conftest import gateway, wait_final

SPOKEN = "the blob store keeps audio out of redis memory"
#: 16 kHz 16-bit mono seconds that make a WAV of 50 MB (50,000,000 bytes) with its headers.
LONG_SECONDS = (50_000_000 - 200) / 32_000

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def stack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(
        tmp_path / "stack", Ports.free(), extra_env={**backend.env, "LOG_LEVEL": "WARNING"}
    )
    running.start(timeout=120)
    yield running
    running.stop()


async def _submit_audio(session: aiohttp.ClientSession, stack: Stack, data: bytes) -> str:
    form = aiohttp.FormData()
    form.add_field("audio_file", data, filename="speech.wav", content_type="audio/wav")
    async with session.post(f"{gateway(stack)}/transcription", data=form) as resp:
        assert resp.status == 202, await resp.text()
        return (await resp.json())["task_id"]


async def test_tasks_end_to_end_on_the_blob_store(stack, backend):
    async with aiohttp.ClientSession() as session:
        speech = await _submit_audio(session, stack, audio.synthesize(SPOKEN))
        async with session.post(f"{gateway(stack)}/tts", json={"text": SPOKEN}) as resp:
            tts = (await resp.json())["task_id"]
        views = await wait_final(session, stack, [speech, tts], patience=120)
        assert [views[t]["status"] for t in (speech, tts)] == ["completed", "completed"]
        assert views[speech]["result"]["output_text"] == SPOKEN
        url = views[tts]["result"]["output_url"]
        async with session.get(f"http://127.0.0.1:{stack.ports.gateway}{url}") as resp:
            wav = await resp.read()
            assert resp.headers["Content-Length"] == str(len(wav))
        assert audio.embedded_text(wav) == SPOKEN

        # The inputs went with the final status; only the TTS output is left.
        names = await backend.names()
        assert [n.split("/")[0] for n in names] == ["outputs"]
        assert tts in names[0]

        # One 50 MB transcription in flight: the validator's peak RSS growth.
        validator = stack.services["validator"].process
        assert validator is not None
        long = audio.synthesize(SPOKEN, LONG_SECONDS)
        before = reset_peak(validator.pid)
        task_id = await _submit_audio(session, stack, long)
        view = (await wait_final(session, stack, [task_id], patience=300))[task_id]
        growth = peak(validator.pid) - before
        ratio = growth / len(long)
        print(
            f"\nmemory validator_transcription_50mb: backend={backend.name} "
            f"input_bytes={len(long)} rss_growth_mib={growth / MIB:.1f} "
            f"ratio_to_input={ratio:.2f}"
        )
        assert view["status"] == "completed", view["error"]
        assert view["result"]["output_text"] == SPOKEN
        assert ratio <= 2.0
        await asyncio.sleep(0.5)
        assert len(await backend.names()) == 1  # the 50 MB input is gone too

    # After a TTS and a 50 MB transcription through the real services: no Redis value
    # (string, hash field, member, stream entry) over 64 KiB.
    redis = Redis.from_url(stack.redis_url)
    try:
        size, where = await largest_redis_value(redis)
    finally:
        await redis.aclose()
    print(f"\nredis largest_value: backend={backend.name} bytes={size} at={where}")
    assert size <= INLINE_MAX, where
