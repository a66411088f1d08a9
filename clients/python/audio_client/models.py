"""Typed views of the gateway's answers: a submission, a task with its result, a page.

Each keeps the JSON it was built from in ``raw``, so fields a newer gateway adds are not
lost (and ``--json`` prints exactly what the API said).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

#: Every status a task can have; the last three are final.
STATUSES = ("pending", "processing", "completed", "failed", "cancelled")
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
TASK_TYPES = ("transcription", "tts", "summarization")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Submission:
    """The 202 answer to a submission."""

    task_id: str
    status: str
    message: str
    estimated_completion_time: int
    task_type: str
    source_language: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Submission:
        return cls(
            task_id=data["task_id"],
            status=data["status"],
            message=data.get("message", ""),
            estimated_completion_time=int(data.get("estimated_completion_time") or 0),
            task_type=data["task_type"],
            source_language=data.get("source_language", ""),
            raw=data,
        )


@dataclass(frozen=True)
class Result:
    """A completed task's best answer and its scores."""

    output_data: str | None
    output_text: str | None
    output_url: str | None
    model_used: str | None
    processing_time: float | None
    accuracy_score: float | None
    accuracy_reason: str | None
    speed_score: float | None
    miner_uid: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(
            output_data=data.get("output_data"),
            output_text=data.get("output_text"),
            output_url=data.get("output_url"),
            model_used=data.get("model_used"),
            processing_time=data.get("processing_time"),
            accuracy_score=data.get("accuracy_score"),
            accuracy_reason=data.get("accuracy_reason"),
            speed_score=data.get("speed_score"),
            miner_uid=data.get("miner_uid"),
        )

    @property
    def output(self) -> bytes | None:
        """The output bytes (WAV for TTS, UTF-8 text otherwise) when the answer carried
        them: outputs over 1 MiB, and every listed task, have none (use
        :meth:`audio_client.Client.output`)."""
        return base64.b64decode(self.output_data) if self.output_data is not None else None


@dataclass(frozen=True)
class Task:
    """``GET /api/v1/tasks/{task_id}``: status, attempts, timestamps and, once completed,
    the result."""

    task_id: str
    status: str
    task_type: str
    source_language: str
    priority: str
    attempts: int
    created_at: str | None
    updated_at: str | None
    completed_at: str | None
    result: Result | None
    error: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Task:
        result = data.get("result")
        return cls(
            task_id=data["task_id"],
            status=data["status"],
            task_type=data["task_type"],
            source_language=data.get("source_language", ""),
            priority=data.get("priority", "normal"),
            attempts=int(data.get("attempts") or 0),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
            completed_at=data.get("completed_at"),
            result=Result.from_json(result) if result else None,
            error=data.get("error"),
            raw=data,
        )

    @property
    def final(self) -> bool:
        """True once the task is completed, failed or cancelled: it will not change again."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class TaskPage:
    """One page of ``GET /api/v1/tasks``, newest first; pass ``next_cursor`` for the next."""

    tasks: list[Task]
    count: int
    next_cursor: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskPage:
        tasks = [Task.from_json(item) for item in data.get("tasks", [])]
        return cls(
            tasks=tasks,
            count=int(data.get("count", len(tasks))),
            next_cursor=data.get("next_cursor"),
            raw=data,
        )
