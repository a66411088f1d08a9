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


def task_events(task_id: str) -> str:
    """Stream of a task's status changes (shared.events), ids ``0-<seq>``; each entry is a
    snapshot of the task's hash. Written by the same scripts that change the status."""
    return f"{PREFIX}:task:{task_id}:events"


def task_channel(task_id: str) -> str:
    """Pub/sub channel told the sequence number of each new event in task_events."""
    return f"{PREFIX}:events:{task_id}"


#: A channel nobody publishes on: an event hub's pub/sub connection always has one
#: subscription, so it can be read before any task is watched.
EVENTS_IDLE_CHANNEL = f"{PREFIX}:events:idle"


def status_index(status: Status | str) -> str:
    """Zset of task ids in one status, scored by creation sequence."""
    return f"{PREFIX}:tasks:{Status(status).value}"


# Work queue: one stream per priority, entries carry only {"task_id": ...}.
CONSUMER_GROUP = "validators"
DEAD_LETTER_STREAM = f"{PREFIX}:stream:dead"


def stream(priority: Priority | str) -> str:
    return f"{PREFIX}:stream:{Priority(priority).value}"


# Replication: a counter whose INCR, followed by WAIT, confirms what the master holds
# (shared.replication.Replication.fence).
REPLICATION_FENCE = f"{PREFIX}:replication:fence"

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


# Task ownership (gateway identities): the same indexes as above, per owner.
def owner_index(owner: str, status: Status | str | None = None) -> str:
    """Zset of one owner's task ids (all, or one status), scored by creation sequence."""
    suffix = f":{Status(status).value}" if status else ""
    return f"{PREFIX}:owner:{owner}:tasks{suffix}"


def owner_expiry(owner: str) -> str:
    """Zset of one owner's finished task ids -> unix time their data expires."""
    return f"{PREFIX}:owner:{owner}:expiry"


# Gateway API keys: only SHA-256 digests are stored, never a key itself.
API_KEYS = f"{PREFIX}:apikeys"  # hash visible prefix -> digest (list, revoke, uniqueness)


def api_key(digest: str) -> str:
    """Hash of one key's record (prefix, name, rate, created_at, revoked_at)."""
    return f"{PREFIX}:apikey:{digest}"


# Gateway rate limits and idempotency, per identity ("key:<prefix>" or "ip:<address>").
def rate_bucket(group: str, identity: str) -> str:
    """Hash of one token bucket (tokens, at)."""
    return f"{PREFIX}:ratelimit:{group}:{identity}"


def idempotency(identity: str, digest: str) -> str:
    """The stored answer to a submission made with one Idempotency-Key (digest of it)."""
    return f"{PREFIX}:idempotency:{identity}:{digest}"


# Blob names: keys of the blob store (shared.blobs), not of Redis. Grouped by the task id's
# first two characters, so no directory of the file backend holds every blob.
INPUT_BLOBS = "inputs/"
OUTPUT_BLOBS = "outputs/"
BLOB_EXPIRY = f"{PREFIX}:blobs:expiry"  # zset blob name -> unix time it is to be deleted
BLOB_SWEEP_LOCK = f"{PREFIX}:lock:blobsweep"  # one replica sweeps for orphans at a time


def input_blob(task_id: str) -> str:
    """A task's input: written once, by the gateway, before the task exists."""
    return f"{INPUT_BLOBS}{task_id[:2]}/{task_id}"


def output_blob(task_id: str, token: str) -> str:
    """One write of a task's output. ``token`` is unique per write, so a replica that
    loses the race to complete a task deletes its own output, never the winner's."""
    return f"{OUTPUT_BLOBS}{task_id[:2]}/{task_id}.{token}"


def segments_blob(task_id: str, token: str) -> str:
    """One write of a task's timed segments (an output too: same prefix, same sweep)."""
    return f"{OUTPUT_BLOBS}{task_id[:2]}/{task_id}.{token}.segments"


def blob_task_id(name: str) -> str:
    """The task id in an input or output blob name."""
    return name.rsplit("/", 1)[-1].split(".", 1)[0]


# Operator state (the gateway's /dashboard and its admin endpoints read these). Validators
# publish what only they know (their miner list, the lb's health, their own work) under
# keys that expire when nobody refreshes them, so the page is right whichever replicas run.
OPS_MINERS = f"{PREFIX}:ops:miners"  # JSON list of {uid, hotkey, stake}, the miner registry
OPS_LB = f"{PREFIX}:ops:lb"  # JSON: the lb's GET /health answer, or why it was unreachable
OPS_VALIDATORS = f"{PREFIX}:ops:validators"  # zset consumer name -> unix time last seen
WEIGHTS_LAST = f"{PREFIX}:weights:last"  # hash: since, set_at, mode, round_at, outcome, ...


def ops_validator(consumer: str) -> str:
    """JSON of one validator replica's live figures (slots, tasks and miners in flight)."""
    return f"{PREFIX}:ops:validator:{consumer}"


def ops_timeline(bucket: int) -> str:
    """Hash of the tasks that reached a final status in one time bucket (shared.timeline)."""
    return f"{PREFIX}:ops:timeline:{bucket}"


def miner_latencies(hotkey: str) -> str:
    """List of one miner's recent answer latencies (seconds), newest first."""
    return f"{PREFIX}:miner:{hotkey}:latency"
