"""Health, stats and metrics, including a Redis that is down at start and comes back."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from devnet.redis_server import RedisServer, free_port
from shared import keys

UNKNOWN_NETWORK = {
    "total_miners": "unknown",
    "available_miners": "unknown",
    "total_stake": "unknown",
    "connectivity": "unknown",
    "last_sync": "unknown",
}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_before_the_validator_published_anything(client):
    await client.post("/api/v1/tts", json={"text": "a", "priority": "low"})
    resp = await client.get("/api/v1/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "healthy" and body["redis"]["status"] == "connected"
    assert body["queue"] == {
        "pending": 1,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "queue_size": 1,
        "queues": {"urgent": 0, "high": 0, "normal": 0, "low": 1},
    }
    assert body["network"] == UNKNOWN_NETWORK


async def test_health_and_stats_show_published_network_figures(client, redis):
    await redis.hset(
        keys.NETWORK_STATS,
        mapping={
            "total_miners": "256",
            "available_miners": "17",
            "total_stake": "1234.5",
            "connectivity": "0.75",
            "last_sync": "1700000000",
        },
    )
    expected = {
        "total_miners": 256,
        "available_miners": 17,
        "total_stake": 1234.5,
        "connectivity": 0.75,
        "last_sync": "2023-11-14T22:13:20Z",
    }
    assert (await (await client.get("/api/v1/health")).json())["network"] == expected
    assert (await (await client.get("/api/v1/stats")).json())["network"] == expected
    # Partly published: the rest stays "unknown"; text figures are passed through.
    await redis.delete(keys.NETWORK_STATS)
    await redis.hset(keys.NETWORK_STATS, mapping={"connectivity": "connected"})
    network = (await (await client.get("/api/v1/stats")).json())["network"]
    assert network == {**UNKNOWN_NETWORK, "connectivity": "connected"}


async def test_stats_counts_and_queues(client, wav):
    from .conftest import audio_form

    await client.post("/api/v1/tts", json={"text": "a", "priority": "urgent"})
    await client.post("/api/v1/summarization", json={"text": "b", "priority": "urgent"})
    await client.post("/api/v1/transcription", data=audio_form(wav, priority="high"))
    resp = await client.get("/api/v1/stats")
    assert resp.status == 200
    body = await resp.json()
    assert body["tasks"] == {
        "pending": 3,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["queues"] == {"urgent": 2, "high": 1, "normal": 0, "low": 0}
    assert body["queue_size"] == 3


async def test_metrics_count_requests_latency_and_submissions(client, make_gateway):
    await client.post("/api/v1/tts", json={"text": "a", "priority": "high"})
    await client.post("/api/v1/tts", json={"text": "b", "priority": "high"})
    await client.post("/api/v1/summarization", json={"text": "c"})
    await client.post("/api/v1/tts", json={"text": ""})
    await client.get("/api/v1/tasks/00000000-0000-4000-8000-000000000000")
    await client.get("/no/such/route")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    got = samples(await resp.text())

    def requests(method: str, route: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return got.get(("gateway_http_requests_total", labels), 0)

    assert requests("POST", "/api/v1/tts", "202") == 2
    assert requests("POST", "/api/v1/tts", "400") == 1
    assert requests("POST", "/api/v1/summarization", "202") == 1
    assert requests("GET", "/api/v1/tasks/{task_id}", "404") == 1
    assert requests("GET", "unmatched", "404") == 1
    latency = (("method", "POST"), ("route", "/api/v1/tts"))
    assert got[("gateway_http_request_duration_seconds_count", latency)] == 3
    inf_bucket = (("le", "+Inf"), *latency)
    assert got[("gateway_http_request_duration_seconds_bucket", inf_bucket)] == 3
    submissions = "gateway_submissions_total"
    assert got[(submissions, (("priority", "high"), ("task_type", "tts")))] == 2
    assert got[(submissions, (("priority", "normal"), ("task_type", "summarization")))] == 1
    assert got[("gateway_queue_length", (("priority", "high"),))] == 2
    assert got[("gateway_tasks", (("status", "pending"),))] == 3
    assert got[("gateway_redis_up", ())] == 1

    # Each app has its own registry: a second gateway has counted nothing yet.
    other = samples(await (await (await make_gateway()).get("/metrics")).text())
    assert not [k for k in other if k[0] == submissions]


async def test_redis_down_at_start_then_back(make_gateway, tmp_path):
    port = free_port()
    client = await make_gateway(redis_url=f"redis://127.0.0.1:{port}/0")

    resp = await client.get("/api/v1/health")
    assert resp.status == 503
    body = await resp.json()
    assert (body["status"], body["redis"]["status"]) == ("unhealthy", "unreachable")
    assert body["error"]["code"] == "redis_unavailable"
    for method, path, kwargs in [
        ("POST", "/api/v1/tts", {"json": {"text": "hi"}}),
        ("GET", "/api/v1/tasks/00000000-0000-4000-8000-000000000000", {}),
        ("GET", "/api/v1/tasks", {}),
        ("GET", "/api/v1/stats", {}),
    ]:
        resp = await client.request(method, path, **kwargs)
        assert resp.status == 503, path
        assert (await resp.json())["error"]["code"] == "redis_unavailable"
        assert resp.headers["Retry-After"] == "5"
    # Validation still answers first: a bad request is a 400 even while Redis is down.
    assert (await client.post("/api/v1/tts", json={"text": " "})).status == 400
    metrics = samples(await (await client.get("/metrics")).text())
    assert metrics[("gateway_redis_up", ())] == 0

    with RedisServer(tmp_path / "redis", port=port, aof=False):
        resp = await client.get("/api/v1/health")
        assert resp.status == 200
        assert (await client.post("/api/v1/tts", json={"text": "hi"})).status == 202

    # And down again mid-life: the pooled connections die, answers turn to 503 again.
    assert (await client.get("/api/v1/health")).status == 503
    assert (await client.post("/api/v1/tts", json={"text": "hi"})).status == 503
