"""Helpers of the Sentinel failover chaos test: a submitter that keeps every answer's code,
and the figures the test prints (the link between master and replica is a
tests.linkrelay.LinkRelay)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.conftest import WORKLOAD


@dataclass
class Answer:
    """One submission: its HTTP status (0: no answer), error code, task id, and when."""

    status: int
    code: str | None
    task_id: str | None
    kind: str
    at: float


@dataclass
class Answers:
    all: list[Answer] = field(default_factory=list)

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.all if a.status == 202]

    def refused(self) -> dict[str, int]:
        """Count per ``<status> <code>`` of every answer that was not a 202."""
        return dict(Counter(f"{a.status} {a.code}" for a in self.all if a.status != 202))


async def submit(
    session: aiohttp.ClientSession,
    api: str,
    kind: str,
    answers: Answers,
    callback_url: str,
) -> None:
    """One submission as a client sends it, its answer kept whatever it is."""
    request = WORKLOAD.request(kind, callback_url)
    try:
        async with session.post(
            f"{api}/{kind}", timeout=aiohttp.ClientTimeout(total=15), **request
        ) as resp:
            body = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        answers.all.append(Answer(0, type(exc).__name__, None, kind, time.time()))
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {}
    code = (parsed.get("error") or {}).get("code") if status != 202 else None
    answers.all.append(Answer(status, code, parsed.get("task_id"), kind, time.time()))


def seconds(since: float, at: float | None) -> float | None:
    return None if at is None else round(at - since, 1)
