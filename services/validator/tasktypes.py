"""The three task types as one table: how to send the input, get the reference, judge answers.

The processor never branches on the task type; it looks the type up in :data:`TASK_TYPES`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.validator import scoring
from services.validator.client import MinerResponse
from services.validator.reference import ReferenceClient
from shared.tasks import TaskType


@dataclass(frozen=True)
class Judged:
    """The accuracy of one answer (None = could not be judged) and why it is 0, if it is."""

    accuracy: float | None
    problem: str | None = None


@dataclass(frozen=True)
class Scored:
    """A miner response with its judgement and scores."""

    response: MinerResponse
    judged: Judged
    speed: float
    score: float

    @property
    def usable(self) -> bool:
        """Worth returning to the client: judged above 0, or not judgeable at all."""
        return self.judged.accuracy is None or self.judged.accuracy > 0

    def record(self) -> dict[str, object]:
        r = self.response
        return {
            "uid": r.miner.uid,
            "hotkey": r.miner.hotkey,
            "ok": True,
            "latency": round(r.latency, 4),
            "accuracy": self.judged.accuracy,
            "problem": self.judged.problem,
            "speed": round(self.speed, 4),
            "score": round(self.score, 4),
        }


ReferenceFn = Callable[[ReferenceClient, bytes, str], Awaitable[str | None]]
JudgeFn = Callable[
    [ReferenceClient, bytes, str, str | None, list[MinerResponse]], Awaitable[list[Judged]]
]


@dataclass(frozen=True)
class TaskSpec:
    """Everything type-specific about a task."""

    task_type: TaskType
    binary_output: bool  # the miner's output is base64 (audio) rather than text
    encode_input: Callable[[bytes], str]
    reference: ReferenceFn  # computed once per task, in parallel with the miner queries
    judge: JudgeFn


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _transcription_reference(refs: ReferenceClient, data: bytes, language: str) -> str | None:
    return await refs.transcribe(data, language)


async def _no_reference(refs: ReferenceClient, data: bytes, language: str) -> None:
    return None


async def _summary_reference(refs: ReferenceClient, data: bytes, language: str) -> str | None:
    return await refs.summarize(_text(data), language)


async def _judge_transcription(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: str | None,
    responses: list[MinerResponse],
) -> list[Judged]:
    texts = [_text(r.output) for r in responses]
    if reference is None:
        return [Judged(a) for a in scoring.consensus_accuracy(texts)]
    return [Judged(scoring.wer_accuracy(reference, t)) for t in texts]


async def _judge_tts(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: str | None,
    responses: list[MinerResponse],
) -> list[Judged]:
    text = _text(data)

    async def one(response: MinerResponse) -> Judged:
        problem = scoring.audio_problem(response.output, text)
        if problem:
            return Judged(0.0, problem)
        transcript = await refs.transcribe(response.output, language)
        if transcript is None:
            return Judged(None, "round_trip_unavailable")
        return Judged(scoring.wer_accuracy(text, transcript))

    return list(await asyncio.gather(*(one(r) for r in responses)))


async def _judge_summarization(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: str | None,
    responses: list[MinerResponse],
) -> list[Judged]:
    source = _text(data)

    def judge_all() -> list[Judged]:
        if reference is not None:
            return [Judged(scoring.rouge_l(reference, _text(r.output))) for r in responses]
        return [Judged(scoring.intrinsic_summary(source, _text(r.output))) for r in responses]

    # ROUGE-L's LCS is quadratic in pure Python: keep it off the event loop.
    return await asyncio.to_thread(judge_all)


TASK_TYPES: dict[TaskType, TaskSpec] = {
    TaskType.TRANSCRIPTION: TaskSpec(
        TaskType.TRANSCRIPTION, False, _b64, _transcription_reference, _judge_transcription
    ),
    TaskType.TTS: TaskSpec(TaskType.TTS, True, _text, _no_reference, _judge_tts),
    TaskType.SUMMARIZATION: TaskSpec(
        TaskType.SUMMARIZATION, False, _text, _summary_reference, _judge_summarization
    ),
}
