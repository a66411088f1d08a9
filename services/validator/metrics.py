"""Prometheus metrics of one validator process, in a registry of its own.

A registry per instance (not the global one) lets tests run several validators in one
process and read each one's counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """Counters and histograms served on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "validator_tasks",
            "Tasks finished by this replica, by outcome (completed, failed, lost_race).",
            ["task_type", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "validator_attempts", "Attempts made, by outcome.", ["task_type", "outcome"], registry=r
        )
        self.miner_responses = Counter(
            "validator_miner_responses",
            "Miner responses, by outcome (ok or the failure kind).",
            ["task_type", "outcome"],
            registry=r,
        )
        self.miner_latency = Histogram(
            "validator_miner_latency_seconds",
            "Round-trip time of miner requests.",
            ["task_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "validator_response_score",
            "Combined score of each scored miner response.",
            ["task_type"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.reclaims = Counter(
            "validator_reclaims",
            "Entries taken over from idle consumers, by outcome (reclaimed, dead_lettered).",
            ["outcome"],
            registry=r,
        )
        self.webhooks = Counter(
            "validator_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, retry, gave_up, refused).",
            ["outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "validator_tasks_in_flight", "Tasks this replica is working on.", registry=r
        )
        self.miners = Gauge(
            "validator_miners", "Miners known from the last sync, by state.", ["state"], registry=r
        )
        self.weights_set = Counter(
            "validator_weight_settings", "Weight settings, by outcome.", ["outcome"], registry=r
        )
        self.storage_full = Counter(
            "validator_storage_full",
            "Writes Redis refused at maxmemory (nothing written, retried later), by where "
            "(task, consumer, reclaim, netstats, webhooks, weights).",
            ["loop"],
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent); used by health output and tests."""
        return self.registry.get_sample_value(name, labels) or 0.0
