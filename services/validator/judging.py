"""One attempt's answers judged and scored, and what each outcome is worth.

Per answer (docs/scoring.md): the accuracy against the validator's reference (None when it
is unknown: never reported or rewarded as perfect), the speed, and the combined score that
ranks the answers. This module also says what the task's result shows, what the miners'
running scores take, what an attempt's record holds and why a task failed.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from services.validator import scoring
from services.validator.client import MinerResponse
from services.validator.reference import Reference, ReferenceClient
from services.validator.settings import ValidatorSettings
from services.validator.tasktypes import Judged, TaskSpec

#: The error kind of a miner's 422: it declines input it cannot process (docs/protocol.md).
DECLINED = "http_422"


@dataclass(frozen=True)
class Scored:
    """A miner response with its judgement and scores."""

    response: MinerResponse
    judged: Judged
    speed: float
    score: float

    @property
    def usable(self) -> bool:
        """Worth returning to the client: ranked above 0, or with nothing to rank it by."""
        ranking = self.judged.ranking
        return ranking is None or ranking > 0

    @property
    def reward(self) -> float | None:
        """What the miner's running score takes: nothing (None) when accuracy is unknown."""
        return None if self.judged.accuracy is None else self.score

    def record(self) -> dict[str, object]:
        r = self.response
        return {
            "uid": r.miner.uid,
            "hotkey": r.miner.hotkey,
            "ok": True,
            "latency": round(r.latency, 4),
            "accuracy": self.judged.accuracy,
            "agreement": self.judged.agreement,
            "problem": self.judged.problem,
            "reason": self.judged.reason,
            "speed": round(self.speed, 4),
            "score": round(self.score, 4),
        }

    def result(self) -> dict[str, object]:
        """The task's ``result`` when this answer wins."""
        r, accuracy = self.response, self.judged.accuracy
        return {
            "model_used": r.model,
            "processing_time": round(r.latency, 4),
            "accuracy_score": None if accuracy is None else round(accuracy, 4),
            "accuracy_reason": self.judged.reason if accuracy is None else None,
            "speed_score": round(self.speed, 4),
            "miner_uid": r.miner.uid,
            # The transcript's timed segments, when the miner gave them (docs/protocol.md).
            **({"segments": r.segments} if r.segments else {}),
        }


async def score_answers(
    spec: TaskSpec,
    refs: ReferenceClient,
    data: bytes,
    language: str,
    reference: Reference,
    answered: list[MinerResponse],
    settings: ValidatorSettings,
) -> list[Scored]:
    """Judge the answers, then score each for speed and combined (ranking) score."""
    judged = await spec.judge(refs, data, language, reference, answered)
    scored = []
    for response, judgement in zip(answered, judged, strict=True):
        speed = scoring.speed_score(response.latency, settings.task_timeout)
        score = scoring.combined_score(
            judgement.ranking, speed, settings.accuracy_weight, settings.speed_weight
        )
        scored.append(Scored(response, judgement, speed, score))
    return scored


def stats_outcomes(
    responses: list[MinerResponse], scored: list[Scored], reference: Reference | None
) -> dict[str, tuple[bool, float | None]]:
    """For MinerStats.record: hotkey -> (answered, running-score sample or None).

    A failed response counts 0. A decline (422) of input the reference pipeline rejected
    too (4xx) is the right answer to unprocessable input: it counts as answered, unjudged.
    """
    agreed = reference is not None and reference.rejected
    outcomes: dict[str, tuple[bool, float | None]] = {
        r.miner.hotkey: (True, None) if agreed and r.error == DECLINED else (False, 0.0)
        for r in responses
        if not r.ok
    }
    outcomes.update({s.response.miner.hotkey: (True, s.reward) for s in scored})
    return outcomes


def attempt_record(
    attempt: int,
    validator: str,
    started: float,
    responses: list[MinerResponse],
    scored: list[Scored],
    best: Scored | None,
) -> dict[str, object]:
    """One attempt for keys.task_attempts: who was asked and how each did."""
    failed = [
        {
            "uid": r.miner.uid,
            "hotkey": r.miner.hotkey,
            "ok": False,
            "error": r.error,
            "latency": round(r.latency, 4),
        }
        for r in responses
        if not r.ok
    ]
    return {
        "attempt": attempt,
        "validator": validator,
        "started_at": started,
        "finished_at": time.time(),
        "responses": [s.record() for s in scored] + failed,
        "winner": best.response.miner.uid if best else None,
    }


def failure_reason(attempts: int, failures: Counter[str], reference: Reference | None) -> str:
    """E.g. "no usable answer from miners after 3 attempts (timeout x4, http_500 x2)",
    followed by the reference pipeline's own verdict when it rejected the input too."""
    detail = ", ".join(f"{kind} x{n}" for kind, n in failures.most_common())
    reason = f"no usable answer from miners after {attempts} attempts" + (
        f" ({detail})" if detail else ""
    )
    if reference is not None and reference.rejected:
        reason += f"; {reference.reason}"
    return reason
