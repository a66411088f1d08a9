"""The LB application: routes, typed state, and the client session and health poller that
live exactly as long as the application does (``cleanup_ctx``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from services.lb import proxy, views
from services.lb.health import HealthChecker
from services.lb.instances import InstancePool
from services.lb.metrics import LbMetrics
from services.lb.settings import LbSettings
from services.lb.state import HEALTH_TASK, METRICS, POOL, SESSION, SETTINGS
from shared.http import request_logging_middleware

# Bound lazily, at first use: after configure_logging has run.
log = structlog.get_logger(component="lb")


async def client_session(app: web.Application) -> AsyncIterator[None]:
    """One pooled client session for health checks and proxied requests."""
    settings = app[SETTINGS]
    app[SESSION] = aiohttp.ClientSession(
        # No cap on connections: each running job holds one for its whole duration.
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(
            total=settings.request_timeout, sock_connect=settings.connect_timeout
        ),
        # A proxy must not keep one client's cookies and hand them to the next.
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=proxy.NO_AUTO_HEADERS,
        auto_decompress=False,
    )
    yield
    await app[SESSION].close()


async def health_polling(app: web.Application) -> AsyncIterator[None]:
    """Run the first health round before serving, then poll in the background."""
    settings = app[SETTINGS]
    checker = HealthChecker(
        app[POOL],
        app[SESSION],
        app[METRICS],
        interval=settings.health_check_interval,
        timeout=settings.health_check_timeout,
    )
    await checker.check_all()
    pool = app[POOL]
    log.info(
        "lb_started",
        instances=[i.url for i in pool],
        healthy=len(pool.healthy()),
        health_check_interval=settings.health_check_interval,
        request_timeout=settings.request_timeout,
    )
    app[HEALTH_TASK] = asyncio.create_task(checker.run(), name="lb-health-poll")
    yield
    app[HEALTH_TASK].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[HEALTH_TASK]


def create_app(settings: LbSettings) -> web.Application:
    """The LB for ``settings``; serve it with handler_cancellation=True (see __main__)."""
    app = web.Application(middlewares=[request_logging_middleware("lb.http")])
    app[SETTINGS] = settings
    app[POOL] = InstancePool(settings.instance_urls, settings.unhealthy_threshold)
    app[METRICS] = LbMetrics(app[POOL])
    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(health_polling)
    app.router.add_get("/", views.index)
    app.router.add_get("/health", views.health)
    app.router.add_get("/metrics", views.metrics)
    app.router.add_post("/v1/audio/transcriptions", proxy.transcribe)
    app.router.add_post("/transcribe", proxy.transcribe)
    return app
