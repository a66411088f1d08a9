"""Gateway fixtures: apps served over loopback by pytest-aiohttp, against the session Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from devnet.audio import synthesize
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.settings import load_settings

MakeGateway = Callable[..., Awaitable[TestClient]]


def gateway_settings(redis_url: str, **overrides: Any) -> GatewaySettings:
    """Settings as the environment would give them: ``max_upload_bytes=10`` is
    MAX_UPLOAD_BYTES=10."""
    env = {"REDIS_URL": redis_url, "ENVIRONMENT": "test"}
    env.update({name.upper(): str(value) for name, value in overrides.items()})
    return load_settings(GatewaySettings, env)


@pytest.fixture
def make_gateway(aiohttp_client, redis_url: str) -> MakeGateway:
    """Start a gateway on a loopback port; keyword arguments override settings."""

    async def make(**overrides: Any) -> TestClient:
        overrides.setdefault("redis_url", redis_url)
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


async def assert_nothing_stored(redis: Redis) -> None:
    """A rejected request must not leave a single key behind (not even the sequence), but
    for its caller's rate-limit buckets: refusals are counted too, or they would be free."""
    stored = await redis.keys("*")
    assert [k for k in stored if not k.startswith(b"audio:ratelimit:")] == []
