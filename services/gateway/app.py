"""The gateway's aiohttp application factory, and the entry point gunicorn workers call.

Middleware order (outermost first): request logging + metrics, JSON errors, API keys
(sets the caller's identity), rate limits (per identity). The last two come after the
error middleware, so their 401s and 429s are rendered as JSON and still logged and
counted. CORS is aiohttp-cors' response hook plus preflight routes, added last.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from services.gateway.admin import setup_admin
from services.gateway.apikeys import ApiKeys
from services.gateway.auth import auth_middleware
from services.gateway.bodies import JSON
from services.gateway.cancel import cancel_task
from services.gateway.cors import setup_cors
from services.gateway.docs import docs_page
from services.gateway.errors import error_middleware
from services.gateway.events import event_hub_ctx, task_events
from services.gateway.health import health
from services.gateway.metrics import METRICS, GatewayMetrics, metrics_endpoint
from services.gateway.openai import setup_openai
from services.gateway.openai.docs import document as document_openai
from services.gateway.openapi import build_spec, openapi_json
from services.gateway.policy import document
from services.gateway.ratelimit import (
    DEFERRED_ROUTES,
    LIMITER,
    RateLimiter,
    ratelimit_middleware,
)
from services.gateway.settings import GatewaySettings
from services.gateway.state import (
    API_KEYS,
    OPENAPI_SPEC,
    REDIS,
    SETTINGS,
    STORE,
    SUBMISSION_KINDS,
)
from services.gateway.stats import stats
from services.gateway.storage import BLOBS, blob_store_ctx
from services.gateway.submissions import submission_handler, task_kinds
from services.gateway.tasks import get_output, get_task, list_tasks
from shared.http import request_logging_middleware
from shared.logging import configure_logging
from shared.redis import create_redis
from shared.replication import Replication
from shared.settings import load_or_exit
from shared.store import TaskStore

log = structlog.get_logger("gateway")


async def redis_pool(app: web.Application) -> AsyncIterator[None]:
    """Open the Redis pool for the app's lifetime. An unreachable Redis is only logged:
    the gateway serves 503s meanwhile and redis-py reconnects on the next command."""
    settings = app[SETTINGS]
    redis = create_redis(settings)
    app[REDIS] = redis
    app[STORE] = TaskStore(
        redis, settings.result_ttl, app[BLOBS], replication=Replication.from_settings(settings)
    )
    app[API_KEYS] = ApiKeys(redis)
    app[LIMITER] = RateLimiter(redis)
    try:
        async with asyncio.timeout(settings.health_timeout):
            await redis.ping()
        log.info("redis_connected")
    except (TimeoutError, RedisError) as exc:
        log.warning("redis_unreachable_at_start", error=str(exc) or type(exc).__name__)
    yield
    await redis.aclose()


def add_routes(app: web.Application) -> None:
    router = app.router
    for kind in app[SUBMISSION_KINDS]:
        router.add_post(kind.path, submission_handler(kind), name=f"submit_{kind.task_type}")
    router.add_get("/api/v1/tasks", list_tasks, name="list_tasks")
    router.add_get("/api/v1/tasks/{task_id}", get_task, name="get_task")
    router.add_delete("/api/v1/tasks/{task_id}", cancel_task, name="cancel_task")
    router.add_get("/api/v1/tasks/{task_id}/output", get_output, name="get_output")
    router.add_get("/api/v1/tasks/{task_id}/events", task_events, name="task_events")
    router.add_get("/api/v1/health", health, name="health")
    router.add_get("/api/v1/stats", stats, name="stats")
    router.add_get("/api/v1/openapi.json", openapi_json, name="openapi")
    router.add_get("/api/v1/docs", docs_page, name="docs")
    router.add_get("/metrics", metrics_endpoint, name="metrics")


def create_app(settings: GatewaySettings) -> web.Application:
    """A ready-to-run gateway; Redis is opened on startup and closed on cleanup."""
    metrics = GatewayMetrics()
    app = web.Application(
        client_max_size=settings.max_json_bytes,
        middlewares=[
            request_logging_middleware("gateway.http", observe=metrics.observe),
            error_middleware,
            auth_middleware,
            ratelimit_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[SUBMISSION_KINDS] = task_kinds(settings)
    # JSON submissions take their rate-limit token in the script that stores the task.
    app[DEFERRED_ROUTES] = frozenset(
        f"submit_{kind.task_type.value}"
        for kind in app[SUBMISSION_KINDS]
        if kind.media_type == JSON
    )
    app.cleanup_ctx.append(blob_store_ctx(settings))
    app.cleanup_ctx.append(redis_pool)
    app.cleanup_ctx.append(event_hub_ctx)
    add_routes(app)
    setup_openai(app, settings)
    setup_admin(app)
    spec = build_spec(app)
    document(spec, app, settings)
    document_openai(spec)
    app[OPENAPI_SPEC] = spec
    setup_cors(app, settings)
    return app


def freeze_startup_objects() -> None:
    """Move everything built so far (modules, schemas, the app) out of the garbage
    collector's sight: it lives as long as the process, and under load every full
    collection would scan it again. Call once, just before serving."""
    gc.collect()
    gc.freeze()


async def gunicorn_app() -> web.Application:
    """For ``gunicorn services.gateway.app:gunicorn_app --worker-class aiohttp.GunicornWebWorker``
    (see gunicorn_conf.py): settings and logging are set up in each worker."""
    settings = load_or_exit(GatewaySettings)
    configure_logging(settings.environment, settings.log_level)
    app = create_app(settings)
    freeze_startup_objects()
    return app
