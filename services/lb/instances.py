"""What the LB knows about each WhisperX instance: health, polled load and its own traffic.

All state lives on the event loop thread, so reads and updates need no locks: a routing
decision and the in-flight increment that follows it happen without an ``await`` between.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any


@dataclasses.dataclass(eq=False)
class Instance:
    """One backend. ``active_jobs`` is the last polled figure, as the seed's /health shows it.

    ``in_flight`` counts the LB's own requests to the instance that have not finished.
    ``outside_jobs`` is the part of the last poll those requests did not explain: jobs that
    reached the instance some other way. Their sum is the routing load (see :attr:`load`).
    """

    url: str
    is_healthy: bool = True
    active_jobs: int = 0
    last_check: datetime | None = None
    consecutive_failures: int = 0
    error_message: str | None = None
    in_flight: int = 0
    outside_jobs: int = 0

    @property
    def load(self) -> int:
        """Jobs expected at the instance now: outside jobs plus the LB's unfinished requests.

        Right after a poll this equals the polled ``active_jobs`` (or the LB's own count if
        larger: an upload still in transit is not a job at the instance yet, but will be).
        Between polls it rises with every dispatch and falls as the LB's requests finish,
        so a burst spreads out instead of piling onto the instance that looked idle.
        """
        return self.outside_jobs + self.in_flight

    def dispatched(self) -> None:
        """Count a request the router has just sent here."""
        self.in_flight += 1

    def finished(self) -> None:
        """Count a request that has ended, however it ended."""
        self.in_flight -= 1

    def polled(self, active_jobs: int) -> bool:
        """Record a successful health check; True when it brings the instance back."""
        self.active_jobs = active_jobs
        self.outside_jobs = max(0, active_jobs - self.in_flight)
        self.last_check = datetime.now(UTC)
        self.consecutive_failures = 0
        self.error_message = None
        recovered = not self.is_healthy
        self.is_healthy = True
        return recovered

    def failed(self, reason: str, threshold: int, *, checked: bool = True) -> bool:
        """Record a failed check (or a passive failure); True when it takes the instance out.

        ``checked`` is False for passive failures: a connection refused or timed out while
        forwarding a real request. Those take the instance out at once, because the next
        request would meet the same closed port; a poll's failure may be a blip, so polls
        need ``threshold`` in a row. A passive failure is no health check: last_check stays.
        """
        if checked:
            self.last_check = datetime.now(UTC)
        self.consecutive_failures += 1
        self.error_message = reason
        if self.is_healthy and (not checked or self.consecutive_failures >= threshold):
            self.is_healthy = False
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        """This instance in the seed's /health shape."""
        return {
            "url": self.url,
            "is_healthy": self.is_healthy,
            "active_jobs": self.active_jobs,
            "last_check": self.last_check.isoformat(timespec="seconds")
            if self.last_check
            else None,
            "consecutive_failures": self.consecutive_failures,
            "error_message": self.error_message,
        }


class InstancePool:
    """The configured instances, in configuration order, and the unhealthy threshold."""

    def __init__(self, urls: list[str], unhealthy_threshold: int) -> None:
        self.instances = [Instance(url) for url in urls]
        self.unhealthy_threshold = unhealthy_threshold

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def healthy(self) -> list[Instance]:
        """Instances currently in rotation."""
        return [i for i in self.instances if i.is_healthy]

    def snapshot(self) -> dict[str, Any]:
        """The seed's /health body: totals and one entry per instance."""
        return {
            "total_instances": len(self.instances),
            "healthy_instances": sum(i.is_healthy for i in self.instances),
            "total_active_jobs": sum(i.active_jobs for i in self.instances),
            "instances": [i.snapshot() for i in self.instances],
        }
