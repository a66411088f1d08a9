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
from services.validator.reference import Reference, ReferenceClient
from shared.tasks import TaskType

#: TTS needs no reference of its own: the input text is what the round trip must give back.
NO_REFERENCE = Reference(None)
CONSENSUS_NOTE = "; ranked by agreement with the other miners' answers"


@dataclass(frozen=True)
class Judged:
    """One answer's accuracy against a reference, or None when it is unknown.

    ``problem`` says why the accuracy is 0, ``reason`` why it is unknown. Without a
    reference, ``agreement`` (consensus with other miners' answers, when there are some)
    stands in for the accuracy to rank answers, but is never reported or rewarded as one.
    """

    accuracy: float | None
    problem: str | None = None
    reason: str | None = None
    agreement: float | None = None

    @property
    def ranking(self) -> float | None:
        """What ranks the answer: its accuracy, else its agreement (None: speed alone)."""
        return self.accuracy if self.accuracy is not None else self.agreement


ReferenceFn = Callable[[ReferenceClient, bytes, str], Awaitable[Reference]]
JudgeFn = Callable[
    [ReferenceClient, bytes, str, Reference, list[MinerResponse]], Awaitable[list[Judged]]
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


async def _transcription_reference(refs: ReferenceClient, data: bytes, language: str) -> Reference:
    return await refs.transcribe(data, language)


async def _no_reference(refs: ReferenceClient, data: bytes, language: str) -> Reference:
    return NO_REFERENCE


async def _summary_reference(refs: ReferenceClient, data: bytes, language: str) -> Reference:
    text = _text(data)
    if scoring.too_short_to_summarize(text):
        # No summary can be shorter than such a text: it is its own reference summary.
        return Reference(text)
    return await refs.summarize(text, language)


async def _judge_transcription(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: Reference,
    responses: list[MinerResponse],
) -> list[Judged]:
    texts = [_text(r.output) for r in responses]
    if reference.text is None:
        cause = f"no reference transcript: {reference.reason}"
        return [
            Judged(
                None,
                problem="agrees_with_no_other_answer" if agreement == 0 else None,
                reason=cause if agreement is None else cause + CONSENSUS_NOTE,
                agreement=agreement,
            )
            for agreement in scoring.consensus_accuracy(texts)
        ]
    return [Judged(scoring.wer_accuracy(reference.text, t)) for t in texts]


async def _judge_tts(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: Reference,
    responses: list[MinerResponse],
) -> list[Judged]:
    text = _text(data)

    async def one(response: MinerResponse) -> Judged:
        problem = scoring.audio_problem(response.output, text)
        if problem:
            return Judged(0.0, problem)
        transcript = await refs.transcribe(response.output, language)
        if transcript.text is None:
            return Judged(None, reason=f"no round-trip transcript: {transcript.reason}")
        return Judged(scoring.wer_accuracy(text, transcript.text))

    return list(await asyncio.gather(*(one(r) for r in responses)))


async def _judge_summarization(
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: Reference,
    responses: list[MinerResponse],
) -> list[Judged]:
    source = _text(data)
    summary = reference.text

    def judge_all() -> list[Judged]:
        if summary is not None:
            return [Judged(scoring.rouge_l(summary, _text(r.output))) for r in responses]
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
