"""Which miners to ask in one attempt: the best by running score, plus one exploration slot.

Miners at this replica's per-miner in-flight cap, or rested after repeated failures, are
skipped; a task waits for a busy healthy miner rather than fall back on a resting one, and
a retry waits for a busy miner not asked yet rather than ask only those that failed it.
New and rarely tried miners get the exploration slot so that a newcomer can earn a score.
Miners already asked in an earlier attempt of the same task come last.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from services.validator.miners import Miner
from services.validator.minerstats import MinerState

#: A miner tried fewer times than this is "rarely tried" and preferred for exploration.
RARELY_TRIED = 10


@dataclass(frozen=True)
class SelectionPolicy:
    size: int  # MAX_MINERS_PER_REQUEST
    max_in_flight: int  # MINER_MAX_IN_FLIGHT
    failure_threshold: int  # MINER_FAILURE_THRESHOLD
    cooldown: float  # MINER_COOLDOWN


def resting(state: MinerState, policy: SelectionPolicy, now: float) -> bool:
    """True while a miner with a run of failures is in its cool-down."""
    return (
        state.consecutive_failures >= policy.failure_threshold
        and now - state.last_failure < policy.cooldown
    )


def choose(
    miners: list[Miner],
    states: Mapping[str, MinerState],
    in_flight: Mapping[str, int],
    policy: SelectionPolicy,
    *,
    now: float,
    already_asked: frozenset[str] = frozenset(),
    rng: random.Random | None = None,
) -> list[Miner]:
    """Up to ``policy.size`` miners for one attempt (empty if every miner is at its cap)."""
    rng = rng or random.Random()
    default = MinerState()
    awake = {m.hotkey for m in miners if not resting(states.get(m.hotkey, default), policy, now)}
    open_miners = [m for m in miners if in_flight.get(m.hotkey, 0) < policy.max_in_flight]
    healthy = [m for m in open_miners if m.hotkey in awake]
    if not healthy and awake:
        # Only resting miners have a free slot while healthy ones are busy: waiting for a
        # slot beats spending an attempt on a miner that just failed several times running.
        return []
    # When every miner is resting, trying one beats failing the task unasked.
    pool = healthy or open_miners
    fresh = [m for m in pool if m.hotkey not in already_asked]
    if not fresh and any(hotkey not in already_asked for hotkey in awake):
        # A retry belongs to a miner not asked yet for this task: wait while those are busy
        # rather than ask again only the ones that have just failed it.
        return []
    asked = [m for m in pool if m.hotkey in already_asked]

    def rank(group: list[Miner]) -> list[Miner]:
        shuffled = rng.sample(group, len(group))  # random order among equal scores
        return sorted(
            shuffled, key=lambda m: states.get(m.hotkey, default).score or 0.0, reverse=True
        )

    ranked = rank(fresh)
    explore = 1 if policy.size > 1 and len(ranked) > policy.size else 0
    chosen = ranked[: policy.size - explore]
    if explore:
        rest = ranked[len(chosen) :]
        rare = [m for m in rest if states.get(m.hotkey, default).tries < RARELY_TRIED]
        chosen.append(rng.choice(rare or rest))
    if len(chosen) < policy.size:
        chosen += rank(asked)[: policy.size - len(chosen)]
    return chosen
