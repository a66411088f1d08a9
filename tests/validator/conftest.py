"""Validator fixtures: real miner servers (devnet.miner) on loopback, validators run as apps
against the session Redis, and tasks created through the shared TaskStore."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from devnet.miner import ACTIVITY, Activity, ProfileConfig
from devnet.miner import create_app as create_miner
from devnet.redis_server import free_port
from services.validator.app import create_app
from services.validator.http import COMPONENTS
from services.validator.settings import ValidatorSettings
from shared import keys
from shared.blobs import open_blob_store
from shared.settings import load_settings
from shared.store import TaskStore
from shared.tasks import FINAL_STATUSES, Priority, Task, TaskType, new_task_id
from tests.validator.sizing import changed_env

ARTICLE = (
    "The city council approved a new budget for public transport on Monday. "
    "The budget adds forty electric buses and extends night services across the city. "
    "Council members said the plan would cut emissions and shorten commutes for workers. "
    "Opponents argued that fares should fall before the network grows any further. "
    "The transport authority will publish a timetable for the new routes next month. "
    "Construction of two depots for the electric buses starts in the spring."
)


@dataclass
class RunningMiner:
    """A devnet miner served on loopback, with what it saw."""

    uid: int
    hotkey: str
    url: str
    app: web.Application

    @property
    def activity(self) -> Activity:
        return self.app[ACTIVITY]

    def listing(self) -> dict[str, Any]:
        return {"uid": self.uid, "hotkey": self.hotkey, "url": self.url}


StartMiner = Callable[..., Awaitable[RunningMiner]]


@pytest.fixture
async def start_miner(miner_wallets) -> AsyncIterator[StartMiner]:
    """Start a devnet miner: ``await start_miner(uid, profile, **profile options)``."""
    servers: list[TestServer] = []

    async def start(uid: int, profile: str = "accurate", **options: Any) -> RunningMiner:
        wallet = miner_wallets[uid]
        app = create_miner(ProfileConfig(profile=profile, seed=uid, **options), wallet)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        url = str(server.make_url("")).rstrip("/")
        return RunningMiner(uid, wallet.hotkey.ss58_address, url, app)

    yield start
    for server in servers:
        await server.close()


def write_miners(path: Path, miners: list[RunningMiner]) -> str:
    path.write_text(json.dumps([m.listing() for m in miners]))
    return str(path)


def validator_settings(
    redis_url: str, miners_file: str | None, **overrides: Any
) -> ValidatorSettings:
    """Settings as the environment would give them, with the timings of tests/validator/sizing.py
    (each changed for a reason given there, and printed at the end of every run)."""
    env = {
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "test",
        "LB_URL": "http://127.0.0.1:9",  # nothing listens: tests that need it override
        "WEBHOOK_SECRET": "whsec_" + "dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tzIQ==",
        "VALIDATOR_PORT": str(free_port()),
        **changed_env(),
    }
    if miners_file:
        env["MINERS_FILE"] = miners_file
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return load_settings(ValidatorSettings, env)


@asynccontextmanager
async def running(
    settings: ValidatorSettings, wallet: Any, *, chain: Any = None, name: str | None = None
) -> AsyncIterator[web.Application]:
    """Run a validator app (loops and HTTP port) until the block exits, then stop it."""
    app = create_app(settings, wallet=wallet, chain=chain, name=name)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.validator_port)
    await site.start()
    try:
        yield app
    finally:
        await runner.cleanup()


def components(app: web.Application):
    return app[COMPONENTS]


async def create_task(
    redis: Redis,
    task_type: TaskType = TaskType.SUMMARIZATION,
    data: bytes = ARTICLE.encode(),
    *,
    priority: Priority = Priority.NORMAL,
    callback_url: str | None = None,
    language: str = "en",
) -> Task:
    """A task as the gateway would create it: hash, input, index and stream entry."""
    task = Task(
        task_id=new_task_id(),
        task_type=task_type,
        language=language,
        priority=priority,
        callback_url=callback_url,
        input_size=len(data),
    )
    return await TaskStore(redis, result_ttl=3600).create(task, data)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


async def wait_final(redis: Redis, task_id: str, within: float = 20.0) -> Task:
    """The task once it is completed or failed."""
    store = TaskStore(redis, result_ttl=3600)

    async def final() -> Task | None:
        task = await store.get(task_id)
        return task if task is not None and task.status in FINAL_STATUSES else None

    return await eventually(final, within)


async def attempts(redis: Redis, task_id: str) -> list[dict[str, Any]]:
    """The attempt records the validator appended for a task."""
    return [json.loads(a) for a in await redis.lrange(keys.task_attempts(task_id), 0, -1)]


async def stored_output(redis: Redis, settings: ValidatorSettings, task_id: str) -> bytes | None:
    """A task's output wherever it is (Redis or the settings' blob store)."""
    blobs = open_blob_store(settings)
    try:
        return await TaskStore(redis, 3600, blobs).get_output(task_id)
    finally:
        await blobs.close()
