"""Real WhisperX stand-ins on loopback for the LB tests, and an LB in front of them.

A :class:`FakeInstance` is a small aiohttp app: its /health reports whatever the test sets,
and its transcription endpoint records every request it receives (path, query, headers,
body bytes) before answering as the test says, or holding the request until released.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from devnet.redis_server import free_port
from services.lb.app import create_app
from services.lb.settings import LbSettings
from shared.settings import load_settings

REPO = Path(__file__).resolve().parents[2]

Reply = Callable[[web.Request, "Received"], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Received:
    """One request as the instance saw it."""

    path: str
    query: str
    headers: CIMultiDictProxy[str]
    body: bytes = b""


async def ok_reply(request: web.Request, received: Received) -> web.StreamResponse:
    return web.json_response({"text": "ok", "port": request.url.port})


class FakeInstance:
    """A WhisperX stand-in with a controllable /health and a recording transcription route."""

    def __init__(self) -> None:
        self.active_jobs: Any = 0
        self.health_status = 200
        #: Raw /health body; when None, {"status": "ok", "active_jobs": self.active_jobs}.
        self.health_body: bytes | None = None
        self.health_delay = 0.0
        self.health_checks = 0
        self.received: list[Received] = []
        self.reply: Reply = ok_reply
        #: Cleared: requests wait after reading their body until it is set again.
        self.release = asyncio.Event()
        self.release.set()
        #: Set when a transcription handler was cut off (cancelled or its body read failed).
        self.aborted = asyncio.Event()
        #: Set once the first body bytes of a request have arrived.
        self.body_started = asyncio.Event()
        #: Read the body in full before answering (else read only what reply() reads).
        self.read_body = True
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/transcribe", self._transcribe)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        self.health_checks += 1
        if self.health_delay:
            await asyncio.sleep(self.health_delay)
        if self.health_body is not None:
            return web.Response(status=self.health_status, body=self.health_body)
        body = {"status": "ok", "active_jobs": self.active_jobs}
        return web.json_response(body, status=self.health_status)

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.path, request.query_string, request.headers)
        self.received.append(received)
        try:
            if self.read_body:
                chunks = []
                async for chunk in request.content.iter_any():
                    chunks.append(chunk)
                    self.body_started.set()
                received.body = b"".join(chunks)
            await self.release.wait()
            return await self.reply(request, received)
        except (asyncio.CancelledError, aiohttp.ClientPayloadError, ConnectionError):
            self.aborted.set()
            raise


async def eventually(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``predicate()`` holds; fail the test if it never does within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.01)


async def leave_mid_upload(
    port: int, path: str, instance: FakeInstance, declared: int, sent: bytes
) -> None:
    """A client that declares ``declared`` body bytes, sends ``sent``, waits until the
    instance sees the body start, then hangs up."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: lb\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n".encode()
    )
    writer.write(sent)
    await writer.drain()
    await asyncio.wait_for(instance.body_started.wait(), 10)
    writer.close()
    await writer.wait_closed()


def lb_settings(urls: list[str], **env: Any) -> LbSettings:
    """LbSettings for ``urls`` (INSTANCE_1_URL ...) plus ``env`` overrides."""
    values = {"ENVIRONMENT": "test", "HEALTH_CHECK_INTERVAL": "60"}
    values.update({f"INSTANCE_{n}_URL": url for n, url in enumerate(urls, start=1)})
    values.update({key: str(value) for key, value in env.items()})
    return load_settings(LbSettings, values)


@pytest.fixture
async def make_instance(aiohttp_server) -> Callable[..., Awaitable[FakeInstance]]:
    """Start a FakeInstance on a loopback port."""

    async def start(**attributes: Any) -> FakeInstance:
        fake = FakeInstance()
        for name, value in attributes.items():
            setattr(fake, name, value)
        fake.server = await aiohttp_server(fake.app())
        return fake

    return start


@pytest.fixture
async def make_lb(aiohttp_client) -> Callable[..., Awaitable[TestClient]]:
    """An LB in this process (its first health round done) and a test client for it."""

    async def start(*instances: FakeInstance | str, **env: Any) -> TestClient:
        urls = [i if isinstance(i, str) else i.url for i in instances]
        return await aiohttp_client(create_app(lb_settings(urls, **env)))

    return start


def lb_environment(**env: Any) -> dict[str, str]:
    """The process environment without any INSTANCE_n_URL, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INSTANCE_")}
    clean.update({key: str(value) for key, value in env.items()})
    clean["PYTHONPATH"] = str(REPO)
    return clean


class LbProcess:
    """``python -m services.lb`` as a child process on a free loopback port."""

    def __init__(self, workdir: Path, **env: Any) -> None:
        self.port = free_port()
        self.log_path = workdir / "lb.log"
        environment = lb_environment(HOST="127.0.0.1", PORT=self.port, **env)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.lb"],
                cwd=workdir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, session: aiohttp.ClientSession, seconds: float = 15.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"lb exited: {self.log_path.read_text()}")
            try:
                async with session.get(f"{self.url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"lb did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def lb_process(tmp_path: Path) -> Iterator[Callable[..., LbProcess]]:
    """Start LB child processes that are stopped when the test ends."""
    started: list[LbProcess] = []

    def start(**env: Any) -> LbProcess:
        process = LbProcess(tmp_path, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session for talking to child processes."""
    async with aiohttp.ClientSession() as client:
        yield client
