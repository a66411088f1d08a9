"""Slow, stalled and oversized clients against the gateway as a real process.

IDLE_TIMEOUT drops connections that never finish a request head; BODY_TIMEOUT answers
408 to a body that stops arriving; a 60 MB upload is refused with 413 while the process'
resident memory stays within MAX_UPLOAD_BYTES plus slack (measured with psutil).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from devnet.audio import synthesize
from devnet.redis_server import RedisServer, free_port
from tests.gateway.conftest import gateway_process

MIB = 1024 * 1024
UPLOAD_LIMIT = 8 * MIB
SIXTY_MB = 60_000_000
BOUNDARY = "slowclientboundary"

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def gateway(redis_server: RedisServer) -> Iterator[tuple[int, psutil.Process]]:
    """``python -m services.gateway`` with one-second timeouts and an 8 MiB upload limit."""
    port = free_port()
    env = {
        "REDIS_URL": redis_server.url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "IDLE_TIMEOUT": "1",
        "BODY_TIMEOUT": "1",
        "MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "RATE_LIMITS": "off",
    }
    with gateway_process(env) as (proc, status):
        assert status == 200
        yield port, psutil.Process(proc.pid)


async def _health(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    status = int((await reader.readline()).split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, json.loads(await reader.readexactly(int(headers["content-length"])))


@pytest.mark.parametrize("sent", [b"", b"POST /api/v1/tts HTTP/1.1\r\nHost: x\r\nContent-"])
async def test_a_stalled_request_head_is_dropped_after_idle_timeout(gateway, sent):
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(sent)
    await writer.drain()
    # Meanwhile the gateway serves others: the stalled connection holds no worker.
    assert await _health(port) == 200
    # The gateway closes the connection without an answer; 10 s is only the test's patience.
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/api/v1/tts", "application/json", b'{"text": "never fin'),
        (
            "/api/v1/transcription",
            f"multipart/form-data; boundary={BOUNDARY}",
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio_file"; '
            'filename="a.wav"\r\n\r\nRIFF'.encode(),
        ),
    ],
)
async def test_a_stalled_body_gets_408_and_the_connection_is_closed(
    gateway, path, content_type, body
):
    port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
    writer.write(f"{head}Content-Length: 100000\r\n\r\n".encode() + body)
    await writer.drain()
    assert await _health(port) == 200
    status, answer = await asyncio.wait_for(_answer(reader), 10)
    assert (status, answer["error"]["code"]) == (408, "request_timeout")
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


def _upload_head(chunked: bool) -> bytes:
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {SIXTY_MB}"
    return (
        f"POST /api/v1/transcription HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{length}\r\n\r\n"
    ).encode()


async def _send_60_mb(port: int, chunked: bool, wav: bytes) -> tuple[int, dict]:
    """Stream a 60 MB form (a WAV head, then zeros) until the gateway answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio_file"; '
        'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode() + wav[:44]
    piece = b"\0" * (256 * 1024)

    async def send() -> None:
        writer.write(_upload_head(chunked))
        sent = 0
        first = part
        while sent < SIXTY_MB:
            data = first + piece[: SIXTY_MB - sent - len(first)]
            first = b""
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            await writer.drain()
            sent += len(data)

    sender = asyncio.create_task(send())
    try:
        return await asyncio.wait_for(_answer(reader), 30)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()


class PeakRss:
    """Samples a process' resident set size in a thread, keeping the highest value."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(60)
async def test_a_60_mb_upload_is_413_with_memory_bounded(gateway):
    port, process = gateway
    wav = synthesize("warm up", 0.2)
    # Warm up the upload path (imports, buffers) before taking the baseline.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    form = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audio_file"; '
            f'filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        + wav
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    writer.write(
        f"POST /api/v1/transcription HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        f"boundary={BOUNDARY}\r\nContent-Length: {len(form)}\r\n\r\n".encode()
        + form
    )
    assert (await _answer(reader))[0] == 202
    writer.close()

    baseline = process.memory_info().rss
    growth = {}
    for chunked in (False, True):
        with PeakRss(process) as rss:
            status, answer = await _send_60_mb(port, chunked, wav)
        assert (status, answer["error"]["code"]) == (413, "file_too_large")
        growth["chunked" if chunked else "content-length"] = (rss.peak - baseline) / MIB
    log.info(
        "60 MB uploads refused; peak RSS growth over %.1f MiB baseline: %s (limit %d MiB)",
        baseline / MIB,
        ", ".join(f"{mode} {mib:.1f} MiB" for mode, mib in growth.items()),
        UPLOAD_LIMIT // MIB,
    )
    # Refused before reading: hardly any growth. Streamed: at most the limit plus slack,
    # far below the 60 MB that were sent.
    assert growth["content-length"] < 8
    assert growth["chunked"] < UPLOAD_LIMIT / MIB + 16
