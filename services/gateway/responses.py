"""Response schemas: what each endpoint answers, for the OpenAPI document.

The submission answer and the task view follow the seed README's shapes field for field;
tests validate real responses against these schemas through the generated spec.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from shared.tasks import PRIORITY_ORDER, Status, TaskType

_TYPES = [t.value for t in TaskType]
_STATUSES = [s.value for s in Status]
_PRIORITIES = [p.value for p in PRIORITY_ORDER]


def _nullable(field_cls: type[fields.Field], **kwargs) -> fields.Field:
    return field_cls(allow_none=True, required=True, **kwargs)


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"description": "stable machine code"})
    message = fields.String(required=True, metadata={"description": "human explanation"})
    field = _nullable(fields.String, metadata={"description": "offending input field"})


class Error(Schema):
    error = fields.Nested(ErrorDetail, required=True)


class SubmissionAccepted(Schema):
    task_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["pending"]))
    message = fields.String(required=True, metadata={"example": "TTS task submitted successfully"})
    estimated_completion_time = fields.Integer(
        required=True, metadata={"description": "seconds until the result is expected"}
    )
    task_type = fields.String(required=True, validate=validate.OneOf(_TYPES))
    source_language = fields.String(required=True)


class TaskResult(Schema):
    output_data = _nullable(
        fields.String,
        metadata={
            "format": "byte",
            "description": "the output, base64; null in listings and for outputs over "
            "1 MiB (then fetch output_url)",
        },
    )
    output_url = fields.String(
        metadata={
            "description": "where the raw output is served (GET, streamed with "
            "Content-Length), relative to the gateway: /api/v1/tasks/{task_id}/output"
        }
    )
    output_text = fields.String(
        metadata={"description": "the output as text (transcription, summarization)"}
    )
    model_used = _nullable(fields.String)
    processing_time = _nullable(fields.Float, metadata={"description": "seconds"})
    accuracy_score = _nullable(
        fields.Float, metadata={"description": "0 to 1; null when it could not be judged"}
    )
    accuracy_reason = _nullable(
        fields.String,
        metadata={"description": "why accuracy_score is null (e.g. no reference transcript)"},
    )
    speed_score = _nullable(fields.Float)
    miner_uid = _nullable(fields.Integer)


class TaskView(Schema):
    task_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(_STATUSES))
    task_type = fields.String(required=True, validate=validate.OneOf(_TYPES))
    source_language = fields.String(required=True)
    priority = fields.String(required=True, validate=validate.OneOf(_PRIORITIES))
    attempts = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = _nullable(fields.DateTime)
    completed_at = _nullable(fields.DateTime)
    result = fields.Nested(TaskResult, required=True, allow_none=True)
    processing_time = _nullable(fields.Float)
    accuracy_score = _nullable(fields.Float)
    speed_score = _nullable(fields.Float)
    error = _nullable(fields.String)


class TaskList(Schema):
    tasks = fields.List(
        fields.Nested(TaskView), required=True, metadata={"description": "newest first"}
    )
    count = fields.Integer(required=True, metadata={"description": "tasks on this page"})
    next_cursor = _nullable(
        fields.String,
        metadata={"description": "pass as ?cursor= for the next page; null at the end"},
    )


class StatusCounts(Schema):
    pending = fields.Integer(required=True)
    processing = fields.Integer(required=True)
    completed = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)


class QueueSizes(Schema):
    urgent = fields.Integer(required=True)
    high = fields.Integer(required=True)
    normal = fields.Integer(required=True)
    low = fields.Integer(required=True)


def _figure(kind: str, description: str) -> fields.Raw:
    return fields.Raw(
        required=True,
        metadata={
            "description": f'{description}; "unknown" until the validator has published it',
            "oneOf": [{"type": kind}, {"type": "string", "enum": ["unknown"]}],
        },
    )


class NetworkStats(Schema):
    total_miners = _figure("integer", "miners registered on the subnet")
    available_miners = _figure("integer", "miners that answered recently")
    total_stake = _figure("number", "stake (TAO) across the subnet")
    connectivity = fields.Raw(
        required=True,
        metadata={"description": 'the validator\'s connectivity figure, or "unknown"'},
    )
    last_sync = fields.Raw(
        required=True,
        metadata={"description": 'ISO 8601 time of the last metagraph sync, or "unknown"'},
    )


class QueueHealth(StatusCounts):
    queue_size = fields.Integer(
        required=True, metadata={"description": "stream entries, all priorities"}
    )
    queues = fields.Nested(QueueSizes, required=True)


class RedisMemory(Schema):
    used_memory = fields.Integer(required=True, metadata={"description": "bytes (INFO memory)"})
    maxmemory = fields.Integer(
        required=True, metadata={"description": "bytes Redis may use; 0: no limit"}
    )
    ratio = _nullable(
        fields.Float,
        metadata={
            "description": "used_memory / maxmemory; near 1 a noeviction Redis refuses writes "
            "(submissions get 503 storage_full); null without a limit"
        },
    )
    maxmemory_policy = fields.String(
        required=True,
        metadata={"description": "noeviction refuses writes when full; others evict data"},
    )


class RedisHealth(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["connected", "unreachable"]))
    latency_ms = fields.Float(metadata={"description": "PING round trip"})
    memory = fields.Nested(
        RedisMemory,
        allow_none=True,
        metadata={
            "description": "memory against maxmemory; null where the Redis user may not run "
            "INFO; absent when unreachable"
        },
    )


class BlobStoreHealth(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["connected", "unreachable"]))
    backend = fields.String(required=True, validate=validate.OneOf(["file", "s3"]))
    latency_ms = fields.Float(metadata={"description": "one ping (S3: HeadBucket)"})


class Health(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["healthy", "degraded", "unhealthy"]),
        metadata={"description": "degraded: Redis is fine, the blob store is unreachable"},
    )
    timestamp = fields.DateTime(required=True)
    redis = fields.Nested(RedisHealth, required=True)
    blob_store = fields.Nested(BlobStoreHealth, required=True)
    queue = fields.Nested(QueueHealth, metadata={"description": "absent when unhealthy"})
    network = fields.Nested(NetworkStats, metadata={"description": "absent when unhealthy"})
    error = fields.Nested(ErrorDetail, metadata={"description": "present when unhealthy"})


class Stats(Schema):
    timestamp = fields.DateTime(required=True)
    tasks = fields.Nested(StatusCounts, required=True)
    queues = fields.Nested(QueueSizes, required=True)
    queue_size = fields.Integer(required=True)
    network = fields.Nested(NetworkStats, required=True)
