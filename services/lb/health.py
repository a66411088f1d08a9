"""Active health checks (GET /health on each instance) and the failure rules they share
with passive checks (a connection to an instance that fails while forwarding a request).

An instance leaves rotation after ``UNHEALTHY_THRESHOLD`` consecutive failures and comes
back after one successful check.
"""

from __future__ import annotations

import asyncio
import json
import math
import random

import aiohttp
import structlog

from services.lb.instances import Instance, InstancePool
from services.lb.metrics import LbMetrics

# Bound lazily, at first use: after configure_logging has run.
log = structlog.get_logger(component="lb.health")

#: Poll intervals vary by this fraction either way, so instances drift out of lockstep.
JITTER = 0.1


class HealthCheckError(Exception):
    """An instance answered /health, but not with a 2xx and a numeric active_jobs."""


def parse_health(status: int, body: bytes) -> int:
    """active_jobs from a /health answer, or HealthCheckError saying what was wrong."""
    if not 200 <= status < 300:
        raise HealthCheckError(f"status {status}")
    try:
        data = json.loads(body)
    except ValueError:
        raise HealthCheckError("invalid JSON") from None
    jobs = data.get("active_jobs") if isinstance(data, dict) else None
    if jobs is None:
        raise HealthCheckError("active_jobs missing")
    # bool is an int subclass; "active_jobs": true is not a count.
    if isinstance(jobs, bool) or not isinstance(jobs, int | float) or not math.isfinite(jobs):
        raise HealthCheckError(f"active_jobs not a number: {jobs!r}")
    return max(0, round(jobs))


def record_failure(
    pool: InstancePool, instance: Instance, reason: str, *, passive: bool = False
) -> None:
    """Count one failure against ``instance`` and log it; log the instance leaving rotation."""
    went_down = instance.failed(reason, pool.unhealthy_threshold, checked=not passive)
    log.warning(
        "instance_failure",
        instance=instance.url,
        reason=reason,
        passive=passive,
        consecutive_failures=instance.consecutive_failures,
    )
    if went_down:
        log.warning(
            "instance_unhealthy",
            instance=instance.url,
            consecutive_failures=instance.consecutive_failures,
            reason=reason,
        )


class HealthChecker:
    """Polls every instance's GET /health: one round at once, then each on its own timer."""

    def __init__(
        self,
        pool: InstancePool,
        session: aiohttp.ClientSession,
        metrics: LbMetrics,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self.pool = pool
        self.session = session
        self.metrics = metrics
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def check(self, instance: Instance) -> None:
        """One health check of ``instance``, applied to its state."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self.session.get(f"{instance.url}/health", timeout=self.timeout) as resp:
                body = await resp.read()
            jobs = parse_health(resp.status, body)
        except TimeoutError:
            reason = f"timeout after {self.timeout.total:g} s"
        except aiohttp.ClientError as exc:
            reason = str(exc) or type(exc).__name__
        except HealthCheckError as exc:
            reason = str(exc)
        except Exception as exc:
            # Anything else is a bug here or in a library; it must not stop the poll loop,
            # and an instance that cannot be checked must not stay in rotation forever.
            log.exception("health_check_error", instance=instance.url)
            reason = f"unexpected error: {exc!r}"
        else:
            self.metrics.health_checks.labels(instance.url, "ok").inc()
            recovered = instance.polled(jobs)
            log.debug(
                "health_check_ok",
                instance=instance.url,
                active_jobs=jobs,
                in_flight=instance.in_flight,
                load=instance.load,
                duration_ms=round((loop.time() - started) * 1000, 1),
            )
            if recovered:
                log.warning("instance_recovered", instance=instance.url, active_jobs=jobs)
            return
        self.metrics.health_checks.labels(instance.url, "failed").inc()
        record_failure(self.pool, instance, reason)

    async def check_all(self) -> None:
        """One round over every instance at once (the start-up round)."""
        await asyncio.gather(*(self.check(instance) for instance in self.pool))

    async def run(self) -> None:
        """Poll forever, each instance every interval ± jitter; cancel to stop."""
        await asyncio.gather(*(self._poll(instance) for instance in self.pool))

    async def _poll(self, instance: Instance) -> None:
        while True:
            await asyncio.sleep(self.interval * random.uniform(1 - JITTER, 1 + JITTER))
            await self.check(instance)
