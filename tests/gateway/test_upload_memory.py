"""Gateway memory under large uploads, measured on a real gateway process's peak RSS, for
both blob backends: the audio streams into the store, so the gateway's memory does not
grow with the upload's size.

Peak RSS is the kernel's high-water mark (VmHWM in /proc/<pid>/status), reset just before
each measurement (``5`` written to /proc/<pid>/clear_refs), against the RSS at that moment.
Each test prints one ``memory <case>: ...`` line with its figures. The gateway runs at its
defaults (MAX_UPLOAD_BYTES 50 MiB, ENVIRONMENT development) but for BLOB_STORE and the S3
settings, which point at a fresh directory or bucket so that leftovers can be checked.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devnet.audio import synthesize
from devnet.redis_server import free_port

from .conftest import gateway_process

MB = 1_000_000
MIB = 1024 * 1024
BOUNDARY = "memorytestboundary"
SEND = 1024 * 1024

pytestmark = pytest.mark.timeout(300)


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS; returns that RSS in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status(pid)["VmRSS"]


def peak(pid: int) -> int:
    return _status(pid)["VmHWM"]


def _form_head(fields: dict[str, str]) -> bytes:
    head = b""
    for name, value in fields.items():
        head += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    return (
        head
        + (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="audio_file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
    )


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


async def _read_answer(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        if key.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def upload(port: int, size: int, *, chunked: bool = False, stop_after: int = 0) -> int:
    """POST a WAV of ``size`` bytes (a real header, then silence) sent 1 MiB at a time, so
    the sender never holds it; returns the status. ``stop_after``: drop the connection
    after that many file bytes instead (the answer is then 0)."""
    wav = synthesize("a long recording", 0.1)
    head = _form_head({"source_language": "en"}) + wav
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = (
        "Transfer-Encoding: chunked"
        if chunked
        else f"Content-Length: {len(head) + size - len(wav) + len(TAIL)}"
    )
    writer.write(
        (
            "POST /api/v1/transcription HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n"
        ).encode()
    )
    answer = asyncio.ensure_future(_read_answer(reader))

    def frame(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data

    try:
        writer.write(frame(head))
        sent, block = len(wav), bytes(SEND)
        while sent < size and not answer.done():
            piece = block[: min(SEND, size - sent)]
            writer.write(frame(piece))
            await writer.drain()
            sent += len(piece)
            if stop_after and sent >= stop_after:
                writer.transport.abort()
                answer.cancel()
                return 0
        if not answer.done():
            writer.write(frame(TAIL) + (b"0\r\n\r\n" if chunked else b""))
            await writer.drain()
    except ConnectionError:
        pass  # the gateway answered (413) and closed before the rest was sent
    try:
        return await answer
    finally:
        writer.close()


@pytest.fixture
async def gateway(backend, redis_url: str, redis: Redis):
    """A gateway process on ``backend``'s store; yields (pid, port, log file)."""
    port = free_port()
    env = {"REDIS_URL": redis_url, "HOST": "127.0.0.1", "PORT": str(port), **backend.env}
    with tempfile.TemporaryFile() as log, gateway_process(env, log=log) as (proc, status):
        assert status == 200
        # Warm up: first uses (the S3 client, the upload path) allocate once.
        assert await upload(port, 2 * MB) == 202
        yield proc.pid, port, log


async def _settled(backend, expected: int) -> list[str]:
    for _ in range(100):
        names = await backend.names()
        if len(names) == expected:
            return names
        await asyncio.sleep(0.05)
    return await backend.names()


async def test_memory_stays_flat_under_large_uploads(gateway, backend, redis: Redis):
    """One 50 MB upload, then ten at once, then a 60 MB chunked upload that is refused, on
    one gateway process (measured one after the other: the peak is reset before each)."""
    pid, port, _ = gateway
    figures = {}

    before = reset_peak(pid)
    assert await upload(port, 50 * MB) == 202
    figures["upload_50mb"] = peak(pid) - before
    assert len(await _settled(backend, 2)) == 2  # the warm-up's input and this one

    before = reset_peak(pid)
    statuses = await asyncio.gather(*(upload(port, 50 * MB) for _ in range(10)))
    figures["upload_10x50mb"] = peak(pid) - before
    assert statuses == [202] * 10
    assert len(await _settled(backend, 12)) == 12

    # Rate-limit buckets expire once full and come back with a request: not task data.
    keys_before = set(await redis.keys("audio:task*"))
    before = reset_peak(pid)
    assert await upload(port, 60 * MB, chunked=True) == 413
    figures["refused_60mb_chunked"] = peak(pid) - before
    assert len(await _settled(backend, 12)) == 12  # nothing of the refused one
    assert set(await redis.keys("audio:task*")) == keys_before  # no task, no input

    for case, growth in figures.items():
        print(f"\nmemory {case}: backend={backend.name} rss_growth_mib={growth / MIB:.1f}")
    assert figures["upload_50mb"] < 16 * MIB
    assert figures["upload_10x50mb"] < 64 * MIB
    assert figures["refused_60mb_chunked"] < 16 * MIB


async def test_disconnect_midway_is_one_log_line_and_no_pause(gateway, backend, redis: Redis):
    """20 MB of a declared 40 MB, then the client drops: one log line, nothing stored,
    and /api/v1/health keeps answering throughout (its latency is printed)."""
    pid, port, log = gateway
    tasks_before = await redis.zcard("audio:tasks:all")
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            start = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert await asyncio.wait_for(_read_answer(reader), 5) == 200
            latencies.append(time.perf_counter() - start)
            writer.close()
            await asyncio.sleep(0.05)

    before = reset_peak(pid)
    prober = asyncio.ensure_future(probe())
    assert await upload(port, 40 * MB, stop_after=20 * MB) == 0
    await asyncio.sleep(1.0)  # probes after the drop, while the gateway cleans up
    done.set()
    await prober
    growth = peak(pid) - before
    print(
        f"\nmemory disconnect_20of40mb: backend={backend.name} rss_growth_mib="
        f"{growth / MIB:.1f} health_probes={len(latencies)} "
        f"health_max_ms={max(latencies) * 1000:.1f} "
        f"health_median_ms={sorted(latencies)[len(latencies) // 2] * 1000:.1f}"
    )
    assert latencies
    assert len(await _settled(backend, 1)) == 1
    assert await redis.zcard("audio:tasks:all") == tasks_before
    log.seek(0)
    text = log.read().decode(errors="replace")
    assert text.count("upload_abandoned") == 1
    assert "Traceback" not in text and "Error handling request" not in text
    assert growth < 16 * MIB
