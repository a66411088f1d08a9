"""Token buckets per identity and endpoint group, in Redis, shared by every replica."""

from __future__ import annotations

import time

import pytest

from services.gateway.apikeys import ApiKeys
from services.gateway.ratelimit import LIMITER
from services.gateway.rates import DEFAULT_LIMITS, Limit, Rate, merge, parse_limits
from shared import keys
from shared.settings import SettingsError

from .conftest import gateway_settings

TTS = "/api/v1/tts"


async def _post(client, headers: dict[str, str] | None = None):
    return await client.post(TTS, json={"text": "hi"}, headers=headers or {})


async def test_the_bucket_empties_then_429_with_retry_after_and_ratelimit_headers(
    make_gateway, redis
):
    client = await make_gateway(rate_limits="submit=3/min")
    seen = []
    for _ in range(3):
        resp = await _post(client)
        assert resp.status == 202
        seen.append(resp.headers["RateLimit-Remaining"])
        assert resp.headers["RateLimit-Limit"] == "3"
        assert resp.headers["RateLimit-Policy"] == "3;w=60"
    assert seen == ["2", "1", "0"]
    resp = await _post(client)
    assert resp.status == 429
    body = await resp.json()
    assert body["error"]["code"] == "rate_limited" and body["error"]["field"] is None
    # One token comes back every 20 s; the bucket is full again after 60 s.
    assert 1 <= int(resp.headers["Retry-After"]) <= 20
    assert resp.headers["RateLimit-Remaining"] == "0"
    assert 40 <= int(resp.headers["RateLimit-Reset"]) <= 60
    assert await redis.zcard(keys.ALL_TASKS) == 3


async def test_two_replicas_share_one_bucket(make_gateway, redis):
    first = await make_gateway(rate_limits="submit=4/min")
    second = await make_gateway(rate_limits="submit=4/min")
    statuses = [(await _post(replica)).status for replica in (first, second, first, second)]
    assert statuses == [202] * 4
    assert (await _post(first)).status == 429
    assert (await _post(second)).status == 429


async def test_a_bucket_refills_with_time(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=2/min")
    assert [(await _post(client)).status for _ in range(3)] == [202, 202, 429]
    # Pretend 30 s went by, for Redis (its clock is the only one the script reads) and for
    # the refusal this process remembers (its monotonic clock): one token back.
    bucket = keys.rate_bucket("submit", "ip:127.0.0.1")
    at = float(await redis.hget(bucket, "at"))
    await redis.hset(bucket, "at", repr(at - 30))
    client.app[LIMITER].refusals.clock = lambda: time.monotonic() + 30
    assert [(await _post(client)).status for _ in range(2)] == [202, 429]


async def test_groups_are_counted_apart(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=1/min,read=2/min,meta=off")
    assert (await _post(client)).status == 202
    assert (await _post(client)).status == 429
    assert [(await client.get("/api/v1/tasks")).status for _ in range(3)] == [200, 200, 429]
    for _ in range(5):
        resp = await client.get("/api/v1/stats")
        assert resp.status == 200 and "RateLimit-Limit" not in resp.headers
    # Probes and scrapes are never limited.
    for path in ("/api/v1/health", "/metrics"):
        assert [(await client.get(path)).status for _ in range(3)] == [200] * 3


async def test_errors_are_counted_and_carry_the_headers(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=2/min")
    for _ in range(2):
        resp = await client.post(TTS, json={"text": " "})
        assert resp.status == 400 and "RateLimit-Remaining" in resp.headers
    assert (await _post(client)).status == 429


async def test_each_key_has_its_own_bucket_and_its_own_rate(make_gateway, redis):
    registry = ApiKeys(redis)
    _, plain = await registry.create("plain")
    _, generous = await registry.create("generous", "submit=5/min,read=off")
    client = await make_gateway(rate_limits="submit=1/min,read=1/min")
    assert (await _post(client)).status == 202  # anonymous: its address's bucket
    assert (await _post(client)).status == 429
    assert [(await _post(client, {"X-API-Key": plain})).status for _ in range(2)] == [202, 429]
    statuses = [(await _post(client, {"X-API-Key": generous})).status for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    reads = [(await client.get("/api/v1/tasks", headers={"X-API-Key": generous})) for _ in range(3)]
    assert [r.status for r in reads] == [200] * 3


@pytest.mark.parametrize(
    ("trusted", "peer_hops", "same_bucket"),
    [
        # Not trusted: a forged header changes nothing, both share the peer's bucket.
        ("", ["1.1.1.1", "2.2.2.2"], True),
        # Trusted loopback proxy: the clients it forwards for are counted apart.
        ("127.0.0.1", ["1.1.1.1", "2.2.2.2"], False),
        ("127.0.0.0/8", ["1.1.1.1, 10.0.0.9", "2.2.2.2, 10.0.0.9"], True),
        ("127.0.0.0/8,10.0.0.0/8", ["1.1.1.1, 10.0.0.9", "2.2.2.2, 10.0.0.9"], False),
    ],
)
async def test_anonymous_buckets_follow_trusted_proxies(
    make_gateway, redis, trusted, peer_hops, same_bucket
):
    client = await make_gateway(rate_limits="submit=1/min", trusted_proxies=trusted)
    first, second = ({"X-Forwarded-For": hops} for hops in peer_hops)
    assert (await _post(client, first)).status == 202
    assert (await _post(client, second)).status == (429 if same_bucket else 202)


def test_rate_syntax():
    assert parse_limits("60/min") == dict.fromkeys(("submit", "read", "meta"), Rate(60, "min"))
    assert parse_limits(" submit = 5 / s , read=off") == {"submit": Rate(5, "s"), "read": None}
    assert parse_limits("off,submit=1/hour")["submit"] == Rate(1, "hour")
    merged = merge(DEFAULT_LIMITS, parse_limits("read=off"))
    assert [str(limit) for limit in merged] == ["submit=600/min", "read=off", "meta=600/min"]
    assert Rate(60, "min").per_second == 1 and Rate(3, "day").period == 86400
    assert str(Limit("submit", Rate(2, "h"))) == "submit=2/h"


@pytest.mark.parametrize(
    "text", ["", "0/min", "60/fortnight", "60", "submit=", "write=1/min", "1/min/2", "-1/s"]
)
def test_bad_rate_limits_stop_the_gateway_naming_the_variable(text, redis_url):
    with pytest.raises(SettingsError, match=r"^RATE_LIMITS:"):
        gateway_settings(redis_url, rate_limits=text or ",")
