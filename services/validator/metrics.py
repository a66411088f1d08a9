"""Prometheus metrics of one validator process, in a registry of its own.

A registry per instance (not the global one) lets tests run several validators in one
process and read each one's counters.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.tasks import Task, TaskType

if TYPE_CHECKING:
    from services.validator.client import MinerResponse

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """Counters and histograms served on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tasks = Counter(
            "validator_tasks",
            "Tasks finished by this replica, by outcome (completed, failed, lost_race; cancelled:"
            " its owner cancelled it while this replica worked on it).",
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
            "(task, consumer, reclaim, netstats, operations, webhooks, weights).",
            ["loop"],
            registry=r,
        )
        self.ops = OperatorMetrics(self)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent); used by health output and tests."""
        return self.registry.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- operators
# What an operator watches (docs/operations.md): end-to-end latency and attempts per task,
# each miner's answers, latency, score and load by uid (at most 256 per subnet, never per
# task), and gauges the operator-state loop (services.validator.operations) refreshes
# from Redis, so every replica reports the same shared figures.

TASK_TYPES = tuple(t.value for t in TaskType)
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10)
MINER_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

#: The outcome label of validator_miner_answers_total: a fixed set, whatever miners send.
#: usable: an answer good enough to return; unusable: answered but judged worthless;
#: the rest are failures by kind (the detailed kind stays in validator_miner_responses).
USABLE, UNUSABLE = "usable", "unusable"
_FAILURE_CLASSES = {"timeout": "timeout", "connection": "connection"}
HTTP_ERROR, BAD_ANSWER = "http_error", "bad_answer"
#: A miner's 422: it declined the input as unprocessable (judging.DECLINED).
DECLINED, DECLINED_KIND = "declined", "http_422"
ANSWER_OUTCOMES = (USABLE, UNUSABLE, DECLINED, "timeout", "connection", HTTP_ERROR, BAD_ANSWER)

#: Label values known in advance: their series exist from the start at 0, so rate(),
#: increase() and the alert rules see a counter before its first event.
_KNOWN: dict[str, list[tuple[str, ...]]] = {  # Metrics attribute -> label values
    "tasks": [
        (t, o) for t in TASK_TYPES for o in ("completed", "failed", "lost_race", "cancelled")
    ],
    "reclaims": [("reclaimed",), ("dead_lettered",)],
    "webhooks": [(o,) for o in ("delivered", "retry", "gave_up", "refused")],
    "weights_set": [(o,) for o in ("set", "logged", "failed", "skipped_locked", "skipped_empty")],
}


def answer_outcome(error: str | None, usable: bool) -> str:
    """The bounded outcome class of one miner response."""
    if error is None:
        return USABLE if usable else UNUSABLE
    if error in _FAILURE_CLASSES:
        return _FAILURE_CLASSES[error]
    if error == DECLINED_KIND:
        return DECLINED
    return HTTP_ERROR if error.startswith("http_") else BAD_ANSWER


class OperatorMetrics:
    """The operator families, registered in the replica's registry."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.task_duration = Histogram(
            "validator_task_duration_seconds",
            "Seconds from submission to the final status, by task type and final status.",
            ["task_type", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.task_attempts = Histogram(
            "validator_task_attempts",
            "Attempts a task took by the time it reached its final status.",
            ["task_type", "outcome"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.answers = Counter(
            "validator_miner_answers",
            "Miner responses by uid and outcome (usable, unusable, declined, timeout,"
            " connection, http_error, bad_answer).",
            ["uid", "outcome"],
            registry=r,
        )
        self.miner_latency = Histogram(
            "validator_miner_request_seconds",
            "Round-trip time of miner requests, by uid.",
            ["uid"],
            buckets=MINER_LATENCY_BUCKETS,
            registry=r,
        )
        self.miner_score = Gauge(
            "validator_miner_score",
            "Running score (moving average, 0..1) of each miner, shared by every replica.",
            ["uid"],
            registry=r,
        )
        self.miner_in_flight = Gauge(
            "validator_miner_in_flight",
            "Requests this replica has open to each miner.",
            ["uid"],
            registry=r,
        )
        self.miner_info = Gauge(
            "validator_miner_info",
            "1 per miner of the registry: the uid's hotkey (one series per uid).",
            ["uid", "hotkey"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "validator_dead_letters",
            "Entries in the dead-letter stream (shared; capped near 10,000).",
            registry=r,
        )
        self.webhook_backlog = Gauge(
            "validator_webhook_backlog",
            "Webhook deliveries queued, by state: due (to be sent now) or scheduled (a retry"
            " waiting out its backoff, or one being sent).",
            ["state"],
            registry=r,
        )
        self.webhook_oldest_due = Gauge(
            "validator_webhook_oldest_due_seconds",
            "Seconds the most overdue webhook delivery has been due (0 when none is).",
            registry=r,
        )
        self.weights_last_set = Gauge(
            "validator_weights_last_set_timestamp_seconds",
            "Unix time weights were last set (static mode: computed and logged); until the"
            " first success, the time the first validator started its weights loop.",
            registry=r,
        )
        self.weights_interval = Gauge(
            "validator_weights_interval_seconds", "WEIGHTS_INTERVAL of this replica.", registry=r
        )
        self.redis_up = Gauge(
            "validator_redis_up",
            "1 if Redis answered the operator-state loop's last round, else 0.",
            registry=r,
        )
        for attribute, labelsets in _KNOWN.items():
            for labels in labelsets:
                getattr(metrics, attribute).labels(*labels)
        for task_type in TASK_TYPES:
            for outcome in ("completed", "failed", "cancelled"):
                self.task_duration.labels(task_type, outcome)
                self.task_attempts.labels(task_type, outcome)
        for state in ("due", "scheduled"):
            self.webhook_backlog.labels(state)

    def finished(self, task: Task, status: str) -> float:
        """Observe a task that has just reached final ``status``: its end-to-end latency and
        its attempts (validator_tasks_total is counted beside). Returns the time used."""
        at = time.time()
        task_type = task.task_type.value
        self.task_duration.labels(task_type, status).observe(max(0.0, at - task.created_at))
        self.task_attempts.labels(task_type, status).observe(task.attempts)
        return at

    def answered(self, responses: Iterable[MinerResponse], usable: Container[str]) -> None:
        """Count one attempt's responses by uid; ``usable``: the hotkeys whose answers were
        good enough to return."""
        for r in responses:
            label = str(r.miner.uid)
            self.answers.labels(label, answer_outcome(r.error, r.miner.hotkey in usable)).inc()
            self.miner_latency.labels(label).observe(r.latency)

    def show_miners(self, rows: list[tuple[int, str, float | None, int]]) -> None:
        """Show exactly these miners, (uid, hotkey, running score, requests open), in the
        per-uid gauges: a miner that left the registry leaves them too."""
        for gauge in (self.miner_info, self.miner_score, self.miner_in_flight):
            gauge.clear()
        for uid, hotkey, score, in_flight in rows:
            label = str(uid)
            self.miner_info.labels(label, hotkey).set(1)
            if score is not None:
                self.miner_score.labels(label).set(score)
            self.miner_in_flight.labels(label).set(in_flight)
            self.answers.labels(label, USABLE)  # at 0 from the start: "no miner answers"
