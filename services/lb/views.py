"""The LB's own endpoints: service info, aggregated health, Prometheus metrics."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from services.lb.state import METRICS, POOL

SERVICE_NAME = "WhisperX Load Balancer"


def _version() -> str:
    try:
        return version("bittensor-audio-gateway")
    except PackageNotFoundError:
        return "unknown"


VERSION = _version()


async def index(request: web.Request) -> web.Response:
    """GET /: what this service is and where its endpoints are (the seed's shape)."""
    return web.json_response(
        {
            "service": SERVICE_NAME,
            "version": VERSION,
            "instances": len(request.app[POOL]),
            "endpoints": {"health": "/health", "transcription": "/v1/audio/transcriptions"},
        }
    )


async def health(request: web.Request) -> web.Response:
    """GET /health: every instance's state as last seen (the seed's shape).

    Always 200: the LB itself is up even when no instance is; healthy_instances says more.
    """
    return web.json_response(request.app[POOL].snapshot())


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text exposition."""
    return request.app[METRICS].render()
