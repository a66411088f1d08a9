"""Queue and network statistics: GET /api/v1/stats, and the figures health reuses."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from services.gateway.openapi import error_response, json_content, operation
from services.gateway.responses import Stats
from services.gateway.state import REDIS, STORE
from shared import keys
from shared.tasks import iso, now

UNKNOWN = "unknown"
NETWORK_FIELDS = ("total_miners", "available_miners", "total_stake", "connectivity", "last_sync")


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def network_view(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """The validator's published figures, typed; "unknown" for any it has not published.

    last_sync may be published as unix seconds or already as text; numbers become ISO 8601.
    """
    out: dict[str, Any] = {}
    for name in NETWORK_FIELDS:
        value = raw.get(name.encode(), b"").decode(errors="replace").strip()
        parsed = _number(value) if value else UNKNOWN
        if name == "last_sync" and isinstance(parsed, int | float):
            parsed = iso(float(parsed))
        out[name] = parsed
    return out


async def read_network(redis: Redis) -> dict[str, Any]:
    return network_view(await redis.hgetall(keys.NETWORK_STATS))


@operation(
    "Task counts, queue sizes and network figures",
    tags=["monitoring"],
    responses={
        "200": {"description": "current statistics", "content": json_content(Stats)},
        "503": error_response("Redis is unreachable"),
    },
)
async def stats(request: web.Request) -> web.Response:
    """Counts per status (within RESULT_TTL), stream entries per priority (waiting or in
    flight), and the network figures the validator publishes."""
    store = request.app[STORE]
    queues = await store.queue_sizes()
    return web.json_response(
        {
            "timestamp": iso(now()),
            "tasks": await store.counts(),
            "queues": queues,
            "queue_size": sum(queues.values()),
            "network": await read_network(request.app[REDIS]),
        }
    )
