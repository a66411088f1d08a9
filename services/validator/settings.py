"""The validator's settings: Redis and chain (shared) plus miners, scoring, retries, webhooks.

Every variable is documented here once; docs/validator.md lists them with their defaults.
"""

from __future__ import annotations

import dataclasses

from marshmallow import fields, validate

from shared.blobs.settings import BlobSettings, RetentionSettings
from shared.settings import ChainSettings, RedisSettings, SettingsError, port_field, setting

CHAIN_NETWORKS = ("finney", "test", "local")


def _seconds(minimum: float = 0.0) -> fields.Float:
    return fields.Float(validate=validate.Range(min=minimum, min_inclusive=minimum == 0.0))


def _count(minimum: int = 1) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=minimum))


def _fraction() -> fields.Float:
    return fields.Float(validate=validate.Range(min=0.0, max=1.0))


def _http_url() -> fields.String:
    return fields.String(validate=validate.URL(schemes={"http", "https"}, require_tld=False))


@dataclasses.dataclass(frozen=True)
class ValidatorSettings(RedisSettings, ChainSettings, BlobSettings, RetentionSettings):
    """Everything ``python -m services.validator`` reads from the environment."""

    # Miners
    miners_file: str | None = setting(
        fields.String(),
        None,
        "static mode: JSON list of {uid, hotkey, url}; unset = chain mode (metagraph)",
    )
    metagraph_sync_interval: float = setting(
        _seconds(0.1), 300.0, "seconds between refreshes of the miner list"
    )
    chain_timeout: float = setting(
        _seconds(0.1), 30.0, "seconds to wait for the chain at start-up and per chain call"
    )
    max_miners_per_request: int = setting(_count(), 5, "miners asked per attempt")
    miner_max_in_flight: int = setting(
        _count(), 8, "requests one replica sends one miner at once; busier miners are skipped"
    )
    miner_failure_threshold: int = setting(
        _count(), 3, "consecutive failed responses after which a miner is rested"
    )
    miner_cooldown: float = setting(
        _seconds(), 120.0, "seconds a miner past MINER_FAILURE_THRESHOLD is skipped"
    )
    miner_max_response_bytes: int = setting(
        _count(1024), 32 * 1024 * 1024, "largest miner answer read; bigger ones count as failed"
    )
    # Scoring
    accuracy_weight: float = setting(_fraction(), 0.7, "weight of accuracy in the score")
    speed_weight: float = setting(_fraction(), 0.3, "weight of speed in the score")
    score_alpha: float = setting(
        _fraction(), 0.1, "moving-average factor of a miner's running score per response"
    )
    lb_url: str = setting(
        _http_url(), "http://localhost:8080", "WhisperX load balancer: reference transcripts"
    )
    summarizer_url: str | None = setting(
        _http_url(),
        None,
        "reference summarizer (POST {text, language} -> {summary}); unset = intrinsic score",
    )
    reference_timeout: float = setting(
        _seconds(0.1), 120.0, "seconds to wait for a reference transcript or summary"
    )
    # Work
    max_attempts: int = setting(_count(), 3, "attempts per task before it fails")
    retry_delay: float = setting(_seconds(), 1.0, "seconds between two attempts of a task")
    block_timeout: float = setting(
        _seconds(0.05), 2.0, "seconds one idle wait for new stream entries lasts"
    )
    heartbeat_interval: float = setting(
        _seconds(0.05),
        2.0,
        "seconds between a live replica's refreshes of the entries it works on; keeps a long"
        " attempt from looking idle, whatever TASK_TIMEOUT is",
    )
    reclaim_idle: float = setting(
        _seconds(0.1),
        8.0,
        "seconds an entry must go without a heartbeat before another replica reclaims it;"
        " at least twice HEARTBEAT_INTERVAL",
    )
    reclaim_interval: float = setting(
        _seconds(0.05), 1.0, "seconds between scans for entries of dead or stopped replicas"
    )
    max_deliveries: int = setting(
        _count(), 5, "deliveries of one entry before it is dead-lettered and its task failed"
    )
    shutdown_grace: float = setting(
        _seconds(),
        0.0,
        "seconds in-flight tasks get to finish on SIGTERM before their entries are handed"
        " back; 0 = hand back at once",
    )
    # Weights
    weights_interval: float = setting(
        _seconds(0.1), 1200.0, "seconds between weight settings (one replica per interval)"
    )
    # Webhooks
    webhook_secret: str | None = setting(
        fields.String(),
        None,
        "Standard Webhooks signing secret (whsec_<base64> or raw); required in production",
    )
    webhook_allow_private: bool = setting(
        fields.Boolean(),
        False,
        "allow webhook URLs resolving to loopback, private or link-local addresses",
    )
    webhook_max_attempts: int = setting(_count(), 6, "delivery attempts per webhook")
    webhook_retry_base: float = setting(
        _seconds(), 30.0, "seconds before the first webhook retry; each later wait is x4"
    )
    webhook_retry_max: float = setting(_seconds(), 3600.0, "longest wait between webhook retries")
    webhook_timeout: float = setting(_seconds(0.1), 10.0, "seconds per webhook attempt")
    webhook_poll_interval: float = setting(
        _seconds(0.01), 1.0, "seconds between checks for due webhook deliveries"
    )
    # Observability
    validator_port: int = setting(port_field(), 9000, "port of /health and /metrics")
    netstats_interval: float = setting(
        _seconds(0.1), 15.0, "seconds between network statistics published for the gateway"
    )
    ops_interval: float = setting(
        _seconds(0.1),
        5.0,
        "seconds between rounds of operator state (dashboard data, shared gauges)",
    )

    @property
    def chain_mode(self) -> bool:
        """True when miners come from the metagraph rather than MINERS_FILE."""
        return not self.miners_file

    def check(self) -> None:
        """Cross-field rules that a single field validator cannot express."""
        self.check_blob_store()
        if self.heartbeat_interval * 2 > self.reclaim_idle:
            # One late heartbeat (a GC pause, a slow Redis reply) must not hand a live
            # replica's work to another one.
            raise SettingsError(
                f"HEARTBEAT_INTERVAL: must be at most half of RECLAIM_IDLE"
                f" ({self.reclaim_idle}s) (got {self.heartbeat_interval!r})"
            )
        if self.environment == "production" and not self.webhook_secret:
            raise SettingsError("WEBHOOK_SECRET: required when ENVIRONMENT=production")
        if self.accuracy_weight + self.speed_weight <= 0:
            raise SettingsError("ACCURACY_WEIGHT: ACCURACY_WEIGHT + SPEED_WEIGHT must be > 0")
