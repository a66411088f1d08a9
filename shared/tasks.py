"""The task model: types, priorities, the status lifecycle and the public JSON view.

Lifecycle: pending -> processing -> completed | failed, and cancelled (by its owner) from
pending or processing. A task is stored as a Redis hash
(see :mod:`shared.store`); its input and output bytes live under keys of their own.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.ids import uuid4_str


class TaskType(StrEnum):
    TRANSCRIPTION = "transcription"
    TTS = "tts"
    SUMMARIZATION = "summarization"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Highest priority first: the order the validator drains the streams in.
PRIORITY_ORDER: tuple[Priority, ...] = (
    Priority.URGENT,
    Priority.HIGH,
    Priority.NORMAL,
    Priority.LOW,
)
FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

#: Seconds quoted as estimated_completion_time before any duration has been measured.
DEFAULT_ESTIMATE = {TaskType.TRANSCRIPTION: 60, TaskType.TTS: 45, TaskType.SUMMARIZATION: 30}

#: A summarization input of at most this many words is too short to summarize: its summary
#: is the text itself (docs/scoring.md). A useful summary needs about a sentence (10 words)
#: and is at most half its source, so no summary of a shorter text is shorter than the text.
SHORT_TEXT_WORDS = 20

#: MIME type of a task's raw output, served by GET /api/v1/tasks/{id}/output.
OUTPUT_MEDIA_TYPE = {
    TaskType.TRANSCRIPTION: "text/plain; charset=utf-8",
    TaskType.TTS: "audio/wav",
    TaskType.SUMMARIZATION: "text/plain; charset=utf-8",
}


def new_task_id() -> str:
    """A random UUID (version 4), in its canonical string form."""
    return uuid4_str()


def now() -> float:
    return datetime.now(UTC).timestamp()


def iso(ts: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC timestamp (None stays None)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclasses.dataclass
class Task:
    """One task's stored fields. ``result`` holds the scores; the output bytes are apart."""

    task_id: str
    task_type: TaskType
    language: str
    priority: Priority = Priority.NORMAL
    status: Status = Status.PENDING
    attempts: int = 0
    callback_url: str | None = None
    created_at: float = dataclasses.field(default_factory=now)
    updated_at: float | None = None
    completed_at: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    input_size: int = 0
    owner: str | None = None
    seq: int = 0
    # Where the bytes are: a blob store name (shared.keys.input_blob / output_blob), or
    # None when they are small enough to sit in Redis (keys.task_input / task_output).
    input_blob: str | None = None
    output_blob: str | None = None
    output_size: int | None = None
    # A transcript's timed segments when they would make ``result`` too large for Redis
    # (shared.taskdata.INLINE_MAX): JSON in the blob store, named here.
    segments_blob: str | None = None

    def to_hash(self) -> dict[str, str]:
        """Flat string fields for HSET; None values are left out."""
        out: dict[str, str] = {}
        for name in _TASK_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = json.dumps(value) if name == "result" else str(value)
        return out

    @classmethod
    def from_hash(cls, raw: dict[bytes | str, bytes | str]) -> Task:
        """Rebuild a task from HGETALL output (bytes or str keys)."""
        d = {_s(k): _s(v) for k, v in raw.items()}
        return cls(
            task_id=d["task_id"],
            task_type=TaskType(d["task_type"]),
            language=d["language"],
            priority=Priority(d.get("priority", "normal")),
            status=Status(d["status"]),
            attempts=int(d.get("attempts", 0)),
            callback_url=d.get("callback_url"),
            created_at=float(d["created_at"]),
            updated_at=_f(d.get("updated_at")),
            completed_at=_f(d.get("completed_at")),
            result=json.loads(d["result"]) if d.get("result") else None,
            error=d.get("error"),
            input_size=int(d.get("input_size", 0)),
            owner=d.get("owner"),
            seq=int(d.get("seq", 0)),
            input_blob=d.get("input_blob"),
            output_blob=d.get("output_blob"),
            output_size=int(d["output_size"]) if d.get("output_size") else None,
            segments_blob=d.get("segments_blob"),
        )


#: Task's field names in declaration order (``dataclasses.fields`` rebuilds them per call).
_TASK_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Task))


#: Largest output whose bytes the status JSON carries (base64 ``output_data``); a larger
#: one is only at ``output_url``.
MAX_INLINE_OUTPUT = 1024 * 1024


def output_path(task_id: str) -> str:
    """Where the gateway serves a task's raw output (relative, like ``Location``)."""
    return f"/api/v1/tasks/{task_id}/output"


def public_view(
    task: Task, output: bytes | None = None, *, output_url: str | None = None
) -> dict[str, Any]:
    """The task as ``GET /api/v1/tasks/{id}`` shows it (and as webhooks carry it).

    The seed README's shape: scores are repeated at the top level, and a completed task's
    ``result`` carries the output base64-encoded as ``output_data`` (plus ``output_text``
    for text outputs), or null when ``output`` is not given (listings, large outputs).
    ``output_url``, when given, says where the raw output is served.
    """
    result = None
    if task.result is not None:
        result = {
            "output_data": base64.b64encode(output).decode() if output is not None else None,
            **({"output_url": output_url} if output_url else {}),
            "model_used": task.result.get("model_used"),
            "processing_time": task.result.get("processing_time"),
            "accuracy_score": task.result.get("accuracy_score"),
            "accuracy_reason": task.result.get("accuracy_reason"),
            "speed_score": task.result.get("speed_score"),
            "miner_uid": task.result.get("miner_uid"),
        }
        if task.task_type != TaskType.TTS and output is not None:
            result["output_text"] = output.decode("utf-8", errors="replace")
    scores = task.result or {}
    return {
        "task_id": task.task_id,
        "status": task.status.value,
        "task_type": task.task_type.value,
        "source_language": task.language,
        "priority": task.priority.value,
        "attempts": task.attempts,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "completed_at": iso(task.completed_at),
        "result": result,
        "processing_time": scores.get("processing_time"),
        "accuracy_score": scores.get("accuracy_score"),
        "speed_score": scores.get("speed_score"),
        "error": task.error,
    }


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _f(v: str | None) -> float | None:
    return float(v) if v not in (None, "") else None
