"""What an attempt yields: a miner's answer with its judgement and scores, and the reason a
client reads when no attempt yielded a usable answer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.validator.client import MinerResponse
from services.validator.tasktypes import Judged


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


def failure_reason(attempts: int, failures: Counter[str]) -> str:
    """E.g. "no usable answer after 3 attempts (timeout x4, http_500 x2)"."""
    detail = ", ".join(f"{kind} x{n}" for kind, n in failures.most_common())
    return f"no usable answer from miners after {attempts} attempts" + (
        f" ({detail})" if detail else ""
    )
