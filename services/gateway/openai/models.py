"""The model names a /v1 client may send, and the task type each one stands for.

The name chooses the kind of work, not a model: the subnet's miners pick their own (the
task's ``model_used`` says which answered).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.tasks import TaskType

OWNER = "bittensor-audio-subnet"
#: Unix time the names were first served (OpenAI's ``created``), fixed: they are constants.
CREATED = 1_790_000_000


@dataclass(frozen=True)
class Model:
    name: str
    task_type: TaskType


MODELS: tuple[Model, ...] = (
    Model("whisper-1", TaskType.TRANSCRIPTION),
    Model("gpt-4o-transcribe", TaskType.TRANSCRIPTION),
    Model("gpt-4o-mini-transcribe", TaskType.TRANSCRIPTION),
    Model("tts-1", TaskType.TTS),
    Model("tts-1-hd", TaskType.TTS),
    Model("gpt-4o-mini-tts", TaskType.TTS),
)


def names(task_type: TaskType) -> list[str]:
    return [m.name for m in MODELS if m.task_type is task_type]


def listing() -> dict[str, object]:
    """``GET /v1/models``: OpenAI's list shape."""
    return {
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": CREATED, "owned_by": OWNER} for m in MODELS
        ],
    }
