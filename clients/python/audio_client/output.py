"""What the CLI prints: human text (results on stdout, notes on stderr) or, with
``--json``, the API's own JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

from audio_client.errors import ApiError, AudioClientError
from audio_client.models import Submission, Task, TaskPage


def note(message: str) -> None:
    """A human note on stderr, so stdout carries only the result."""
    sys.stderr.write(message + "\n")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def submission(sub: Submission) -> None:
    """The task id alone on stdout (``ID=$(audio-client tts hi)``), the message on stderr."""
    sys.stdout.write(sub.task_id + "\n")
    note(f"{sub.message}; estimated completion in {sub.estimated_completion_time} s")


def details(task: Task, base_url: str) -> None:
    """``status``: every field worth reading, one per line."""
    rows = [
        ("task_id", task.task_id),
        ("status", task.status),
        ("type", f"{task.task_type} ({task.source_language}, {task.priority} priority)"),
        ("attempts", str(task.attempts)),
        ("created_at", task.created_at),
        ("updated_at", task.updated_at),
        ("completed_at", task.completed_at),
        ("error", task.error),
    ]
    if task.result is not None:
        rows += [
            ("scores", _scores(task)),
            ("output_url", base_url + task.result.output_url if task.result.output_url else None),
            ("output_text", task.result.output_text),
        ]
    for name, value in rows:
        if value is not None:
            sys.stdout.write(f"{name:<13}{value}\n")


def outcome(task: Task, base_url: str, written: str | None = None) -> None:
    """A finished wait: the output text on stdout, or where the audio is; the rest on
    stderr."""
    if task.status == "completed" and task.result is not None:
        if written is not None:
            note(f"wrote {written}")
        elif task.result.output_text is not None:
            sys.stdout.write(task.result.output_text + "\n")
        elif task.result.output_url:
            sys.stdout.write(base_url + task.result.output_url + "\n")
        note(f"{task.task_id} completed: {_scores(task)}")
    elif task.status == "failed":
        note(f"{task.task_id} failed after {task.attempts} attempt(s): {task.error}")
    else:
        note(f"{task.task_id} {task.status}")


def page(tasks: TaskPage) -> None:
    """``list``: one tab-separated row per task, the next cursor on stderr."""
    sys.stdout.write("TASK_ID\tSTATUS\tTYPE\tPRIORITY\tATTEMPTS\tCREATED_AT\n")
    for t in tasks.tasks:
        sys.stdout.write(
            f"{t.task_id}\t{t.status}\t{t.task_type}\t{t.priority}\t{t.attempts}\t{t.created_at}\n"
        )
    if tasks.next_cursor is not None:
        note(f"more: --cursor {tasks.next_cursor}")


def error(exc: AudioClientError, as_json: bool) -> None:
    """An error on stderr; with ``--json`` also as ``{"error": {...}}`` on stdout."""
    note(f"error: {exc}")
    if as_json:
        if isinstance(exc, ApiError):
            body = {"status": exc.status, "code": exc.code, "message": exc.message}
            body["field"] = exc.field
        else:
            body = {"status": None, "code": _code(exc), "message": str(exc), "field": None}
        emit_json({"error": body})


def _code(exc: AudioClientError) -> str:
    name = type(exc).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _scores(task: Task) -> str:
    r = task.result
    if r is None:
        return ""

    def fmt(value: float | None) -> str:
        return "unknown" if value is None else f"{value:.2f}"

    accuracy = fmt(r.accuracy_score)
    if r.accuracy_score is None and r.accuracy_reason:
        accuracy += f" ({r.accuracy_reason})"
    time_taken = "unknown" if r.processing_time is None else f"{r.processing_time:.2f} s"
    return (
        f"miner {r.miner_uid}, {r.model_used}, {time_taken}, accuracy {accuracy},"
        f" speed {fmt(r.speed_score)}"
    )
