"""Streaming with bounded memory: the LB runs as its own process and its RSS is sampled
while a 200 MB upload passes through it to a sink instance."""

from __future__ import annotations

import asyncio

import psutil

from devnet import whisperx

MIB = 1 << 20
UPLOAD = 200 * MIB
#: Issue 5's bound for a 1 GiB upload; a buffering LB would grow by the whole 200 MB.
MAX_GROWTH = 64 * MIB


async def test_a_200_mb_upload_streams_with_bounded_memory(aiohttp_server, lb_process, session):
    sink = await aiohttp_server(whisperx.create_app(discard_audio=True))
    lb = lb_process(INSTANCE_1_URL=f"http://127.0.0.1:{sink.port}", LOG_LEVEL="WARNING")
    await lb.wait_ready(session)
    url = f"{lb.url}/v1/audio/transcriptions"
    async with session.post(url, data=b"warm-up") as response:
        assert response.status == 200

    process = psutil.Process(lb.process.pid)
    baseline = process.memory_info().rss
    peak = baseline

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.005)

    chunk = b"\x5a" * MIB

    async def upload():
        for _ in range(UPLOAD // MIB):
            yield chunk

    sampler = asyncio.create_task(sample())
    try:
        headers = {"Content-Length": str(UPLOAD), "Content-Type": "application/octet-stream"}
        async with session.post(url, data=upload(), headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["bytes_received"] == UPLOAD
    finally:
        sampler.cancel()
    assert peak - baseline < MAX_GROWTH, f"RSS grew {(peak - baseline) / MIB:.1f} MiB"
