"""Prometheus metrics: requests by route and status, latency, submissions by type and priority.

Each app owns a :class:`CollectorRegistry`, so tests can build many apps in one process.
Under gunicorn, ``gunicorn_conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` and a scrape then
sums every worker's files instead of reporting only the worker that answered.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from services.gateway.openapi import operation
from services.gateway.state import SETTINGS, STORE
from shared.http import route_name
from shared.queues import QueueFigures

log = structlog.get_logger("gateway.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """The gateway's metric families, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_http_requests_total",
            "HTTP requests answered, by method, route pattern and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time from request start to handler return, by method and route pattern",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.submissions = Counter(
            "gateway_submissions_total",
            "Tasks accepted (202), by task type and priority",
            ["task_type", "priority"],
            registry=self.registry,
        )
        self.queue_length = Gauge(
            "gateway_queue_length",
            "Stream entries per priority (waiting or in flight), read at scrape time",
            ["priority"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.tasks = Gauge(
            "gateway_tasks",
            "Tasks per status within RESULT_TTL, read at scrape time",
            ["status"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.redis_up = Gauge(
            "gateway_redis_up",
            "1 if Redis answered the last scrape's queries, else 0",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

        self.cancellations = Counter(
            "gateway_tasks_cancelled_total",
            "Tasks cancelled by their owner (DELETE), by task type and the status they had",
            ["task_type", "was"],
            registry=self.registry,
        )
        self.event_streams = Gauge(
            "gateway_event_streams",
            "Server-Sent Event streams open on this process",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

        # Label children by label values: ``.labels()`` validates and locks on every call,
        # and route patterns, methods and statuses are few.
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._submissions: dict[tuple[str, str], Counter] = {}

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        """Record one answered request; the hook :func:`request_logging_middleware` calls."""
        route = route_name(request)
        method = request.method
        counter = self._requests.get((method, route, status))
        if counter is None:
            counter = self.requests.labels(method, route, str(status))
            self._requests[method, route, status] = counter
        counter.inc()
        histogram = self._latency.get((method, route))
        if histogram is None:
            histogram = self._latency[method, route] = self.latency.labels(method, route)
        histogram.observe(seconds)

    def submitted(self, task_type: str, priority: str) -> None:
        """Count one accepted task."""
        counter = self._submissions.get((task_type, priority))
        if counter is None:
            counter = self.submissions.labels(task_type, priority)
            self._submissions[task_type, priority] = counter
        counter.inc()

    def render(self) -> bytes:
        """The text exposition: this app's registry, or every worker's in multiprocess mode."""
        if os.environ.get(MULTIPROC_ENV):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", GatewayMetrics)


@operation(
    "Prometheus metrics",
    tags=["monitoring"],
    responses={
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics_endpoint(request: web.Request) -> web.Response:
    """Request counts and latencies by route, submissions by type and priority, and queue
    and task gauges read from Redis at scrape time (skipped, redis_up 0, when it is down)."""
    metrics = request.app[METRICS]
    store = request.app[STORE]
    try:
        async with asyncio.timeout(request.app[SETTINGS].health_timeout):
            queues = await store.queue_sizes()
            counts = await store.counts()
    except (TimeoutError, RedisError) as exc:
        log.warning("metrics_redis_unreachable", error=str(exc) or type(exc).__name__)
        metrics.redis_up.set(0)
    else:
        metrics.redis_up.set(1)
        for priority, size in queues.items():
            metrics.queue_length.labels(priority).set(size)
        for status, count in counts.items():
            metrics.tasks.labels(status).set(count)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# --------------------------------------------------------------------------- operators
# Queue depth and age (docs/operations.md), refreshed by a periodic collector
# (services.gateway.admin.collector) rather than per request or per scrape: every replica
# reads the same streams, so the figures agree whichever replica Prometheus scrapes.

#: ``state`` label: waiting (no validator took the entry yet) or in_flight.
QUEUE_STATES = ("waiting", "in_flight")


class QueueGauges:
    """Per-priority queue depth and oldest-entry age, in the gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge(
            "gateway_queue_depth",
            "Entries per priority stream, by state: waiting for a validator or in flight",
            ["priority", "state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.oldest_age = Gauge(
            "gateway_queue_oldest_age_seconds",
            "Seconds the oldest entry per priority and state has been queued (0 when none)",
            ["priority", "state"],
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.updated = Gauge(
            "gateway_queue_metrics_updated_timestamp_seconds",
            "Unix time the queue gauges were last read from Redis",
            registry=registry,
            multiprocess_mode="max",
        )

    def show(self, figures: Iterable[QueueFigures], at: float) -> None:
        for f in figures:
            p = f.priority.value
            self.depth.labels(p, "waiting").set(f.waiting)
            self.depth.labels(p, "in_flight").set(f.in_flight)
            self.oldest_age.labels(p, "waiting").set(f.oldest_waiting or 0.0)
            self.oldest_age.labels(p, "in_flight").set(f.oldest_in_flight or 0.0)
        self.updated.set(at)
