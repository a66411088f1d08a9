"""Gateway fixtures: apps served over loopback by pytest-aiohttp, against the session Redis."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from devnet.audio import synthesize
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.storage import BLOBS
from shared.blobs import BlobStore
from shared.settings import load_settings
from shared.store import TaskStore
from shared.tasks import Status
from tests.blobstores import blob_names

MakeGateway = Callable[..., Awaitable[TestClient]]

REPO = Path(__file__).resolve().parents[2]
GATEWAY_COMMAND = [sys.executable, "-m", "services.gateway"]

#: The fields of the seed README's answer to a submission.
SEED_SUBMISSION_KEYS = {
    "task_id",
    "status",
    "message",
    "estimated_completion_time",
    "task_type",
    "source_language",
}

#: The top-level fields of the seed README's task status answer.
SEED_STATUS_KEYS = {
    "task_id",
    "status",
    "task_type",
    "source_language",
    "result",
    "processing_time",
    "accuracy_score",
    "speed_score",
    "completed_at",
}


@contextmanager
def gateway_process(
    env: dict[str, str],
    *,
    cwd: Path = REPO,
    args: list[str] = GATEWAY_COMMAND,
    log: IO[bytes] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The gateway (or ``args``) as a real process on ``env["PORT"]``, until the block ends.

    Yields the process once /api/v1/health answers, with the status of that first answer.
    stderr goes to ``log`` or a temporary file (a pipe nobody drains could stall a chatty
    process) and is shown if the process dies before answering.
    """
    url = f"http://127.0.0.1:{env['PORT']}/api/v1/health"
    with contextlib.ExitStack() as files:
        stderr = log if log is not None else files.enter_context(tempfile.TemporaryFile())
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            yield proc, _first_answer(proc, url, stderr)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _first_answer(
    proc: subprocess.Popen[bytes], url: str, stderr: IO[bytes], within: float = 20
) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr.seek(0)
            output = stderr.read().decode(errors="replace")
            raise AssertionError(f"process exited with {proc.returncode}: {output}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        # TimeoutError: the port is open but nothing answers yet (gunicorn's master listens
        # while its workers are still booting).
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {within}s")


def gateway_settings(redis_url: str, **overrides: Any) -> GatewaySettings:
    """Settings as the environment would give them: ``max_upload_bytes=10`` is
    MAX_UPLOAD_BYTES=10."""
    env = {"REDIS_URL": redis_url, "ENVIRONMENT": "test"}
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return load_settings(GatewaySettings, env)


@pytest.fixture
def make_gateway(aiohttp_client, redis_url: str, tmp_path: Path) -> MakeGateway:
    """Start a gateway on a loopback port; keyword arguments override settings.

    BLOB_STORE is a fresh directory per test instead of the default var/blobs (which every
    test of a run would share), so a test can check that nothing was left in it."""

    async def make(**overrides: Any) -> TestClient:
        overrides.setdefault("redis_url", redis_url)
        overrides.setdefault("blob_store", str(tmp_path / "blobs"))
        return await aiohttp_client(create_app(gateway_settings(**overrides)))

    return make


@pytest.fixture
async def client(make_gateway: MakeGateway, redis: Redis) -> TestClient:
    """A default gateway on an empty Redis (the ``redis`` fixture flushes it first)."""
    return await make_gateway()


@pytest.fixture(scope="session")
def wav() -> bytes:
    return synthesize("hello world", 0.2)


def audio_form(data: bytes, filename: str = "audio.wav", **fields: str) -> FormData:
    form = FormData()
    form.add_field("audio_file", data, filename=filename, content_type="audio/wav")
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def assert_nothing_stored(redis: Redis, client: TestClient | None = None) -> None:
    """A rejected request must not leave a single key behind (not even the sequence), but
    for its caller's rate-limit buckets: refusals are counted too, or they would be free.
    With the gateway's ``client``, its blob store must be empty too."""
    stored = await redis.keys("*")
    assert [k for k in stored if not k.startswith(b"audio:ratelimit:")] == []
    if client is not None:
        assert await blob_names(client.app[BLOBS]) == []


async def complete_task(
    redis: Redis,
    task_id: str,
    result: dict[str, Any],
    output: bytes,
    *,
    ttl: int = 3600,
    blobs: BlobStore | None = None,
    **options: Any,
) -> None:
    """Move a pending task to completed through the store's own transitions, as the
    validator does (no validator runs in these tests)."""
    store = TaskStore(redis, ttl, blobs)
    assert await store.transition(task_id, Status.PROCESSING, expect=[Status.PENDING])
    assert await store.transition(
        task_id,
        Status.COMPLETED,
        expect=[Status.PROCESSING],
        fields={"result": json.dumps(result), "attempts": 1},
        output=output,
        **options,
    )
