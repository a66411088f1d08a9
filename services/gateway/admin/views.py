"""The admin endpoints: JSON the dashboard polls, for scripts too (docs/operations.md).

Each answers 503 (the gateway's usual JSON error) while Redis is unreachable.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.admin import reads
from services.gateway.admin.collector import QUEUE_READER
from services.gateway.state import REDIS, STORE
from shared.http import Handler


def _answer(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def admin_queues(request: web.Request) -> web.Response:
    """Per priority: depth, waiting, in flight, oldest ages; task counts per status."""
    return _answer(await reads.queues(request.app[QUEUE_READER], request.app[STORE]))


async def admin_miners(request: web.Request) -> web.Response:
    """Per miner: uid, hotkey, score, answers, failures, latency p50, in flight."""
    return _answer(await reads.miners(request.app[REDIS]))


async def admin_instances(request: web.Request) -> web.Response:
    """The lb's WhisperX instances as a validator last saw them."""
    return _answer(await reads.instances(request.app[REDIS]))


async def admin_timeline(request: web.Request) -> web.Response:
    """Tasks finished and their latency per bucket over the last 15 minutes."""
    return _answer(await reads.chart(request.app[REDIS]))


async def admin_overview(request: web.Request) -> web.Response:
    """Webhook backlog, dead letters, last weights, validator replicas, network figures."""
    return _answer(await reads.overview(request.app[REDIS]))


#: Path suffix under /api/v1/admin/ -> handler (route name: admin_<suffix>).
ENDPOINTS: dict[str, Handler] = {
    "queues": admin_queues,
    "miners": admin_miners,
    "instances": admin_instances,
    "timeline": admin_timeline,
    "overview": admin_overview,
}
