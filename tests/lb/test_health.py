"""Health: the start-up round, what counts as a failed check, the threshold and recovery."""

from __future__ import annotations

import pytest

from services.lb.state import POOL
from tests.lb.conftest import eventually


async def _health(client) -> dict:
    response = await client.get("/health")
    assert response.status == 200
    return await response.json()


async def test_first_round_runs_at_start_up(make_instance, make_lb):
    a, b = await make_instance(active_jobs=2), await make_instance(active_jobs=5)
    client = await make_lb(a, b)
    body = await _health(client)
    assert (body["total_instances"], body["healthy_instances"], body["total_active_jobs"]) == (
        2,
        2,
        7,
    )
    first = body["instances"][0]
    assert first["url"] == a.url and first["active_jobs"] == 2 and first["is_healthy"] is True
    assert first["last_check"] is not None and first["error_message"] is None
    assert first["consecutive_failures"] == 0


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"health_status": 503}, "status 503"),
        ({"health_body": b"<html>oops</html>"}, "invalid JSON"),
        ({"health_body": b'{"status": "ok"}'}, "active_jobs missing"),
        ({"active_jobs": "three"}, "active_jobs not a number"),
        ({"active_jobs": None}, "active_jobs missing"),
        ({"health_delay": 2.0}, "timeout"),
    ],
)
async def test_what_counts_as_a_failed_check(make_instance, make_lb, attributes, reason):
    bad = await make_instance(**attributes)
    client = await make_lb(bad, UNHEALTHY_THRESHOLD=1, HEALTH_CHECK_TIMEOUT=0.2)
    (state,) = (await _health(client))["instances"]
    assert state["is_healthy"] is False
    assert state["consecutive_failures"] == 1
    assert reason in state["error_message"]


async def test_unhealthy_after_threshold_then_one_success_restores(make_instance, make_lb):
    flaky = await make_instance(health_status=500)
    client = await make_lb(flaky, HEALTH_CHECK_INTERVAL=0.05, UNHEALTHY_THRESHOLD=3)
    instance = client.app[POOL].instances[0]
    # One failure (the start-up round) is not enough.
    assert (instance.is_healthy, instance.consecutive_failures) == (True, 1)

    history: list[tuple[int, bool]] = []

    def down() -> bool:
        history.append((instance.consecutive_failures, instance.is_healthy))
        return not instance.is_healthy

    await eventually(down)
    assert instance.consecutive_failures >= 3
    assert all(healthy for failures, healthy in history if failures < 3)
    assert "status 500" in (await _health(client))["instances"][0]["error_message"]

    flaky.health_status = 200
    flaky.active_jobs = 4
    await eventually(lambda: instance.is_healthy)
    (state,) = (await _health(client))["instances"]
    assert (state["consecutive_failures"], state["active_jobs"], state["error_message"]) == (
        0,
        4,
        None,
    )


async def test_unhealthy_instances_get_no_requests(make_instance, make_lb):
    down = await make_instance(health_status=500, active_jobs=0)
    up = await make_instance(active_jobs=7)
    client = await make_lb(down, up, UNHEALTHY_THRESHOLD=1)
    for _ in range(5):
        assert (await client.post("/v1/audio/transcriptions", data=b"x")).status == 200
    assert (len(down.received), len(up.received)) == (0, 5)


async def test_instances_are_polled_again_after_the_interval(make_instance, make_lb):
    instance = await make_instance(active_jobs=1)
    client = await make_lb(instance, HEALTH_CHECK_INTERVAL=0.05)
    assert (await _health(client))["instances"][0]["active_jobs"] == 1
    instance.active_jobs = 6
    # The third check starts only after the second (sent after the change) was applied.
    await eventually(lambda: instance.health_checks >= 3)
    assert (await _health(client))["instances"][0]["active_jobs"] == 6
