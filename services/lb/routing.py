"""Least-load instance selection, as HAProxy's leastconn does it, with the polled jobs added.

The load of an instance is :attr:`Instance.load <services.lb.instances.Instance.load>`:
jobs the last health check saw that the LB did not send, plus the LB's own requests to it
that have not finished. The LB's share is live, so consecutive decisions within one poll
interval see each other, and a burst spreads out instead of landing on one idle instance.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from services.lb.instances import Instance, InstancePool


def choose(pool: InstancePool, tried: Collection[Instance] = ()) -> Instance | None:
    """The healthy instance not in ``tried`` with the least load; ties broken at random.

    None when no instance qualifies. Random ties keep equally loaded instances evenly used
    without a round-robin cursor that several failovers could skew.
    """
    best: list[Instance] = []
    best_load = 0
    for instance in pool:
        if not instance.is_healthy or instance in tried:
            continue
        load = instance.load
        if not best or load < best_load:
            best, best_load = [instance], load
        elif load == best_load:
            best.append(instance)
    return random.choice(best) if best else None
