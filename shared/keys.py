"""Every Redis key and stream the services use, in one place.

All keys share the ``audio:`` prefix so the project can share a Redis with other tenants.
"""

from __future__ import annotations

from shared.tasks import Priority, Status

PREFIX = "audio"

# Tasks: a hash per task, its input and output under their own keys (never in a stream).
SEQUENCE = f"{PREFIX}:tasks:seq"  # INCR counter: creation order, used as index score
ALL_TASKS = f"{PREFIX}:tasks:all"  # zset task_id -> seq
EXPIRY_INDEX = f"{PREFIX}:tasks:expiry"  # zset task_id -> unix time its data expires


def task(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}"


def task_input(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}:input"


def task_output(task_id: str) -> str:
    return f"{PREFIX}:task:{task_id}:output"


def task_attempts(task_id: str) -> str:
    """List of JSON attempt records (one per validator attempt)."""
    return f"{PREFIX}:task:{task_id}:attempts"


def status_index(status: Status | str) -> str:
    """Zset of task ids in one status, scored by creation sequence."""
    return f"{PREFIX}:tasks:{Status(status).value}"


# Work queue: one stream per priority, entries carry only {"task_id": ...}.
CONSUMER_GROUP = "validators"
DEAD_LETTER_STREAM = f"{PREFIX}:stream:dead"


def stream(priority: Priority | str) -> str:
    return f"{PREFIX}:stream:{Priority(priority).value}"


# Statistics shared between services.
NETWORK_STATS = f"{PREFIX}:network"  # hash published by the validator, read by the gateway


def durations(task_type: str) -> str:
    """List of recent end-to-end processing durations (seconds) for one task type."""
    return f"{PREFIX}:stats:durations:{task_type}"


# Validator state shared by all replicas.
MINER_SCORES = f"{PREFIX}:miners:scores"  # hash hotkey -> moving-average score
WEIGHTS_LOCK = f"{PREFIX}:lock:weights"


def miner_stats(hotkey: str) -> str:
    """Hash of per-miner counters (tries, failures, last failure time)."""
    return f"{PREFIX}:miner:{hotkey}"


# Webhook deliveries: a zset of delivery ids scored by due time, a hash per delivery.
WEBHOOK_QUEUE = f"{PREFIX}:webhooks:due"


def webhook(delivery_id: str) -> str:
    return f"{PREFIX}:webhook:{delivery_id}"
