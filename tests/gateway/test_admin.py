"""The operator surface: who may open /dashboard and /api/v1/admin/*, and what they show,
read from a real Redis written the way validators write it."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from redis.asyncio import Redis

from services.gateway.apikeys import ApiKeys
from services.validator.minerstats import MinerStats
from shared import keys, timeline
from tests.gateway.conftest import MakeGateway

SVG_NS = "http://www.w3.org/2000/svg"
ADMIN_ROUTES = [
    "/dashboard",
    "/dashboard/static/dashboard.js",
    "/dashboard/static/dashboard.css",
    *(f"/api/v1/admin/{n}" for n in ("queues", "miners", "instances", "timeline", "overview")),
]


def basic(key: str, user: str = "operator") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


async def _error(resp) -> str:
    return (await resp.json())["error"]["code"]


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", ADMIN_ROUTES)
async def test_development_on_loopback_is_open_without_a_key(make_gateway, redis, path):
    # ENVIRONMENT=development (what make run sets); the test client connects from 127.0.0.1.
    client = await make_gateway(environment="development")
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize("path", ADMIN_ROUTES)
async def test_without_a_key_anywhere_else_it_is_401_with_a_basic_challenge(client, redis, path):
    resp = await client.get(path)  # ENVIRONMENT=test: not development
    assert resp.status == 401 and await _error(resp) == "missing_admin_key"
    assert resp.headers["WWW-Authenticate"].startswith('Basic realm="audio-subnet admin"')


@pytest.mark.parametrize(
    ("overrides", "headers"),
    [
        ({"api_keys_required": "true"}, {}),  # keys required: loopback is no exception
        ({}, {"X-Forwarded-For": "203.0.113.9"}),  # relayed by a proxy we do not trust
        ({}, {"Forwarded": "for=203.0.113.9"}),
        ({"trusted_proxies": "127.0.0.1"}, {"X-Forwarded-For": "203.0.113.9"}),
    ],
    ids=["keys-required", "untrusted-proxy-xff", "untrusted-proxy-forwarded", "trusted-proxy"],
)
async def test_development_is_closed_to_anyone_not_on_loopback(
    make_gateway: MakeGateway, redis, overrides, headers
):
    client = await make_gateway(environment="development", **overrides)
    resp = await client.get("/api/v1/admin/queues", headers=headers)
    assert resp.status == 401 and await _error(resp) == "missing_admin_key"


async def test_a_trusted_local_proxy_relaying_a_local_client_is_on_loopback(make_gateway, redis):
    client = await make_gateway(environment="development", trusted_proxies="127.0.0.1")
    resp = await client.get("/api/v1/admin/queues", headers={"X-Forwarded-For": "127.0.0.1"})
    assert resp.status == 200


async def test_an_admin_key_opens_everything_in_any_header(client, redis: Redis):
    _, key = await ApiKeys(redis).create("ops", admin=True)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}, basic(key)):
        for path in ADMIN_ROUTES:
            resp = await client.get(path, headers=headers)
            assert resp.status == 200, (path, headers, await resp.text())


async def test_other_keys_are_refused_for_what_they_are(client, redis: Redis):
    registry = ApiKeys(redis)
    _, client_key = await registry.create("a client")
    record, revoked = await registry.create("old ops", admin=True)
    await registry.revoke(record.prefix)
    _, admin = await registry.create("ops", admin=True)
    cases = [
        ({"Authorization": f"Bearer {client_key}"}, 403, "admin_key_required"),
        (basic(client_key), 403, "admin_key_required"),
        ({"Authorization": f"Bearer {revoked}"}, 401, "api_key_revoked"),
        ({"X-API-Key": "ak_00000000_nope"}, 401, "invalid_api_key"),
        ({"Authorization": "Basic %%%"}, 401, "invalid_authorization"),
        ({"Authorization": "Digest x"}, 401, "invalid_authorization"),
        (
            {"Authorization": f"Bearer {admin}", "X-API-Key": client_key},
            401,
            "invalid_authorization",
        ),
    ]
    for headers, status, code in cases:
        resp = await client.get("/api/v1/admin/overview", headers=headers)
        assert (resp.status, await _error(resp)) == (status, code), headers
    # An admin key is a key like any other on the public API.
    resp = await client.post(
        "/api/v1/tts", json={"text": "hi"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert resp.status == 202


async def test_the_admin_routes_stay_out_of_the_public_api_document(client, redis):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert not [p for p in spec["paths"] if "admin" in p or "dashboard" in p]


async def test_the_page_is_static_with_a_strict_content_security_policy(make_gateway, redis):
    client = await make_gateway(environment="development")
    resp = await client.get("/dashboard")
    page = await resp.text()
    assert resp.content_type == "text/html"
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    script = await client.get("/dashboard/static/dashboard.js")
    assert script.content_type == "text/javascript"
    code = await script.text()
    assert "innerHTML" not in code  # values go in as text, never as markup
    style = await (await client.get("/dashboard/static/dashboard.css")).text()
    # Nothing from a CDN in the assets either; the SVG namespace is a name, never fetched.
    for text in (code.replace(f'"{SVG_NS}"', ""), style):
        assert "http://" not in text and "https://" not in text and "url(" not in text
        assert "@import" not in text and "import(" not in text
    assert (await client.get("/dashboard/static/secrets.env")).status == 404


# --------------------------------------------------------------------------- contents


@pytest.fixture
async def ops(make_gateway, redis):
    """A development gateway on loopback: the admin endpoints need no key."""
    return await make_gateway(environment="development")


async def get(client, name: str) -> dict:
    resp = await client.get(f"/api/v1/admin/{name}")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return await resp.json()


async def test_queues_show_waiting_tasks_and_their_age(ops, redis):
    for _ in range(2):
        resp = await ops.post("/api/v1/tts", json={"text": "hi", "priority": "low"})
        assert resp.status == 202
    await asyncio.sleep(0.05)
    body = await get(ops, "queues")
    by_priority = {q["priority"]: q for q in body["queues"]}
    assert list(by_priority) == ["urgent", "high", "normal", "low"]
    assert (by_priority["low"]["waiting"], by_priority["low"]["in_flight"]) == (2, 0)
    assert by_priority["low"]["oldest_waiting_seconds"] > 0
    assert by_priority["urgent"]["oldest_waiting_seconds"] is None
    assert body["tasks"]["pending"] == 2


async def test_miners_join_the_published_registry_with_shared_counters(ops, redis: Redis):
    registry = [
        {"uid": 3, "hotkey": "hk-a", "stake": 1.5},
        {"uid": 7, "hotkey": "hk-b", "stake": 0},
    ]
    await redis.set(keys.OPS_MINERS, json.dumps(registry))
    stats = MinerStats(redis, alpha=0.5)
    await stats.record({"hk-a": (True, 0.8), "hk-b": (False, 0.0)}, latencies={"hk-a": 0.2})
    await stats.record({"hk-a": (True, 0.6)}, latencies={"hk-a": 0.4})
    await stats.record({"hk-a": (True, 0.6)}, latencies={"hk-a": 0.3})
    now = time.time()
    for name, in_flight in (("v1", {"hk-a": 2}), ("v2", {"hk-a": 1, "hk-b": 1})):
        await redis.zadd(keys.OPS_VALIDATORS, {name: now})
        await redis.set(
            keys.ops_validator(name),
            json.dumps({"consumer": name, "at": now, "miners_in_flight": in_flight}),
        )
    await redis.zadd(keys.OPS_VALIDATORS, {"gone": now - 600})  # its figures expired
    body = await get(ops, "miners")
    assert body["registry_published"] is True
    a, b = body["miners"]
    assert (a["uid"], a["hotkey"], a["stake"]) == (3, "hk-a", 1.5)
    assert a["answers"] == 3 and a["failures"] == 0 and a["latency_p50"] == 0.3
    assert a["score"] == pytest.approx(0.65) and a["in_flight"] == 3
    assert (b["uid"], b["answers"], b["failures"], b["in_flight"]) == (7, 0, 1, 1)
    assert b["latency_p50"] is None and b["score"] == 0.0


async def test_miners_without_a_published_registry_are_those_with_a_score(ops, redis: Redis):
    await MinerStats(redis, alpha=0.5).record({"hk-z": (True, 0.9)})
    body = await get(ops, "miners")
    assert body["registry_published"] is False
    assert [(m["uid"], m["hotkey"]) for m in body["miners"]] == [(None, "hk-z")]


async def test_instances_are_the_lb_health_a_validator_published(ops, redis: Redis):
    assert (await get(ops, "instances"))["lb"] is None
    health = {"total_instances": 1, "healthy_instances": 1, "instances": [{"url": "http://w"}]}
    published = {
        "url": "http://lb:8080",
        "at": time.time() - 3,
        "reachable": True,
        "health": health,
    }
    await redis.set(keys.OPS_LB, json.dumps(published))
    lb = (await get(ops, "instances"))["lb"]
    assert lb["health"] == health and lb["url"] == "http://lb:8080"
    assert 2 < lb["age_seconds"] < 60


async def test_overview_shows_webhooks_dead_letters_weights_and_replicas(ops, redis: Redis):
    now = time.time()
    await redis.zadd(keys.WEBHOOK_QUEUE, {"d1": now - 120, "d2": now - 5, "later": now + 600})
    await redis.xadd(
        keys.DEAD_LETTER_STREAM,
        {"task_id": "t-1", "priority": "high", "entry_id": "1-0", "deliveries": 6, "at": now - 30},
    )
    await redis.hset(
        keys.WEIGHTS_LAST,
        mapping={"since": now - 4000, "set_at": now - 100, "mode": "chain", "uids": 4,
                 "round_at": now - 100, "outcome": "set", "interval": 1200},
    )  # fmt: skip
    await redis.zadd(keys.OPS_VALIDATORS, {"v1": now})
    await redis.set(keys.ops_validator("v1"), json.dumps({"consumer": "v1", "at": now - 2}))
    body = await get(ops, "overview")
    webhooks = body["webhooks"]
    assert (webhooks["due"], webhooks["scheduled"]) == (2, 1)
    assert 119 < webhooks["oldest_due_seconds"] < 180
    dead = body["dead_letters"]
    assert dead["count"] == 1 and dead["recent"][0]["task_id"] == "t-1"
    assert dead["recent"][0]["deliveries"] == 6 and 29 < dead["recent"][0]["age_seconds"] < 90
    weights = body["weights"]
    assert (weights["mode"], weights["uids"], weights["last_round_outcome"]) == ("chain", 4, "set")
    assert 99 < weights["set_age_seconds"] < 160 and weights["interval_seconds"] == 1200
    assert [v["consumer"] for v in body["validators"]] == ["v1"]
    assert body["network"]["total_miners"] == "unknown"  # no validator published any


async def test_timeline_counts_what_validators_recorded(ops, redis: Redis):
    await timeline.count(redis, "completed", created_at=time.time() - 2.0)
    body = await get(ops, "timeline")
    assert body["bucket_seconds"] == 15 and len(body["points"]) == 60
    assert sum(p["completed"] for p in body["points"]) == 1
    assert body["points"][-1]["latency_mean"] == pytest.approx(2.0, abs=0.5)


async def test_admin_endpoints_answer_503_while_redis_is_down(make_gateway):
    from devnet.redis_server import free_port

    client = await make_gateway(
        environment="development", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    for name in ("queues", "miners", "instances", "timeline", "overview"):
        resp = await client.get(f"/api/v1/admin/{name}")
        assert resp.status == 503, name
    assert (await client.get("/dashboard")).status == 200  # the page itself needs no Redis


# --------------------------------------------------------------------------- /metrics


async def test_the_queue_collector_feeds_the_queue_gauges(client, redis):
    for priority in ("low", "low", "urgent"):
        resp = await client.post("/api/v1/tts", json={"text": "hi", "priority": priority})
        assert resp.status == 202
    wanted = 'gateway_queue_depth{priority="low",state="waiting"} 2.0'
    deadline = time.monotonic() + 15  # QUEUE_METRICS_INTERVAL (5 s) and then some
    text = ""
    while time.monotonic() < deadline and wanted not in text:
        await asyncio.sleep(0.2)
        text = await (await client.get("/metrics")).text()
    assert wanted in text
    assert 'gateway_queue_depth{priority="urgent",state="waiting"} 1.0' in text
    assert 'gateway_queue_depth{priority="low",state="in_flight"} 0.0' in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith('gateway_queue_oldest_age_seconds{priority="low",state="waiting"}')
    )
    assert float(age.rsplit(" ", 1)[1]) >= 0
    assert "gateway_queue_metrics_updated_timestamp_seconds" in text
    assert "gateway_redis_up 1.0" in text
