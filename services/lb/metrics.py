"""Prometheus metrics for the LB, in a registry of its own per application.

Per-instance state (health, polled jobs, in-flight, load) is read from the
:class:`~services.lb.instances.Instance` objects at scrape time, so nothing has to keep
gauges in step with the routing code.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from services.lb.instances import Instance, InstancePool

#: Request outcomes, the ``outcome`` label of ``lb_requests_total``.
OK = "ok"
CONNECT_FAILED = "connect_failed"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT = "timeout"
CLIENT_DISCONNECTED = "client_disconnected"
NO_INSTANCE = "no_instance"

#: ``instance`` label when no instance was chosen.
NONE = "none"

# Jobs run from seconds to an hour; the upstream latency is time to the response headers.
LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class LbMetrics:
    """The LB's collectors, registered in ``self.registry``."""

    def __init__(self, pool: InstancePool) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lb_requests",
            "Transcription requests by instance and outcome (connect_failed: tried elsewhere)",
            ["instance", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "lb_upstream_latency_seconds",
            "Seconds from dispatch to the instance's response headers",
            ["instance"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "lb_upload_bytes",
            "Request body bytes relayed upstream, by path: splice (kernel pipe, zero-copy)"
            " or copy (through Python)",
            ["path"],
            registry=self.registry,
        )
        self.health_checks = Counter(
            "lb_health_checks",
            "Health checks by instance and result (ok or failed)",
            ["instance", "result"],
            registry=self.registry,
        )
        healthy = Gauge(
            "lb_instance_healthy",
            "1 when the instance is in rotation, else 0",
            ["instance"],
            registry=self.registry,
        )
        active_jobs = Gauge(
            "lb_instance_active_jobs",
            "active_jobs from the instance's last successful health check",
            ["instance"],
            registry=self.registry,
        )
        in_flight = Gauge(
            "lb_in_flight_requests",
            "Requests the LB is forwarding to the instance now",
            ["instance"],
            registry=self.registry,
        )
        load = Gauge(
            "lb_instance_load",
            "Routing load: jobs from outside the LB (last poll) plus the LB's in-flight requests",
            ["instance"],
            registry=self.registry,
        )
        for instance in pool:
            _bind(healthy, instance, lambda i: float(i.is_healthy))
            _bind(active_jobs, instance, lambda i: float(i.active_jobs))
            _bind(in_flight, instance, lambda i: float(i.in_flight))
            _bind(load, instance, lambda i: float(i.load))

    def render(self) -> web.Response:
        """The text exposition of every collector, for GET /metrics."""
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def _bind(gauge: Gauge, instance: Instance, read: Callable[[Instance], float]) -> None:
    gauge.labels(instance.url).set_function(lambda: read(instance))
