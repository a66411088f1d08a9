"""The gateway behind Sentinels: 202 only once REDIS_MIN_REPLICAS_ACK replicas have the task,
503 with Retry-After (never 500) while no master can take it, against real redis-server
processes (a master, one replica, three Sentinels)."""

from __future__ import annotations

from redis.asyncio import Redis

from devnet.sentinel import SentinelGroup
from shared import keys
from tests.gateway.conftest import MakeGateway

#: Shorter than the 1000 ms default, only so that the unconfirmable cases end quickly.
SHORT_MS = 200
TTS = {"text": "hello there", "source_language": "en"}


async def test_a_submission_is_acknowledged_once_the_replica_has_it(
    make_gateway: MakeGateway, sentinel_group: SentinelGroup, sentinel_master: Redis
):
    client = await make_gateway(redis_sentinels=sentinel_group.addresses, redis_min_replicas_ack=1)
    resp = await client.post("/api/v1/tts", json=TTS)
    assert resp.status == 202, await resp.text()
    task_id = (await resp.json())["task_id"]
    replica = next(p for p in sentinel_group.nodes if p != sentinel_group.first_master)
    async with Redis(port=replica) as r:
        assert await r.hget(keys.task(task_id), "status") == b"pending"


async def test_an_unconfirmed_submission_is_refused_and_withdrawn(
    make_gateway: MakeGateway, sentinel_group: SentinelGroup, sentinel_master: Redis
):
    # Two replicas asked for, one exists: WAIT cannot be satisfied.
    client = await make_gateway(
        redis_sentinels=sentinel_group.addresses,
        redis_min_replicas_ack=2,
        redis_ack_timeout_ms=SHORT_MS,
    )
    hooked = {**TTS, "callback_url": "https://example.com/hook"}
    for _ in range(2):  # the same Idempotency-Key is not replayed as a 202
        resp = await client.post("/api/v1/tts", json=hooked, headers={"Idempotency-Key": "k1"})
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert (await resp.json())["error"]["code"] == "not_replicated"
    withdrawn = await sentinel_master.zrange(keys.status_index("failed"), 0, -1)
    assert len(withdrawn) == 2
    assert await sentinel_master.zcard(keys.status_index("pending")) == 0
    for task_id in withdrawn:
        stored = await sentinel_master.hgetall(keys.task(task_id.decode()))
        assert stored[b"callback_url"] == b""  # no webhook for a refused submission
        assert stored[b"error"].startswith(b"not accepted")
    assert await sentinel_master.keys("audio:idempotency:*") == []


async def test_no_master_named_is_a_503_with_retry_after(
    make_gateway: MakeGateway, sentinel_group: SentinelGroup
):
    client = await make_gateway(
        redis_sentinels=sentinel_group.addresses, redis_sentinel_master="nosuch"
    )
    resp = await client.post("/api/v1/tts", json=TTS)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    assert (await resp.json())["error"]["code"] == "redis_unavailable"
    health = await client.get("/api/v1/health")
    assert health.status == 503


async def test_a_demoted_master_is_a_503_with_retry_after(
    make_gateway: MakeGateway, sentinel_group: SentinelGroup, sentinel_master: Redis
):
    # One Sentinel names a node that is (now) a replica, as during a failover's last second.
    replica = next(p for p in sentinel_group.nodes if p != sentinel_group.first_master)
    sentinel = Redis(port=sentinel_group.sentinels[0].port)
    await sentinel.execute_command("SENTINEL", "MONITOR", "demoted", "127.0.0.1", replica, 1)
    await sentinel.execute_command("SENTINEL", "SET", "demoted", "down-after-milliseconds", 600000)
    try:
        client = await make_gateway(
            redis_sentinels=f"127.0.0.1:{sentinel_group.sentinels[0].port}",
            redis_sentinel_master="demoted",
        )
        resp = await client.post("/api/v1/tts", json=TTS)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        assert (await resp.json())["error"]["code"] == "redis_unavailable"
    finally:
        await sentinel.execute_command("SENTINEL", "REMOVE", "demoted")
        await sentinel.aclose()


async def test_an_unconfirmed_submission_without_a_key_spends_one_token_and_is_withdrawn(
    make_gateway: MakeGateway, sentinel_group: SentinelGroup, sentinel_master: Redis
):
    # The token rides in the create script, and its WAIT follows in the same pipeline: the
    # write is refused as not replicated, withdrawn, and the caller is charged once.
    client = await make_gateway(
        redis_sentinels=sentinel_group.addresses,
        redis_min_replicas_ack=2,
        redis_ack_timeout_ms=SHORT_MS,
        rate_limits="submit=5/min",
    )
    resp = await client.post("/api/v1/tts", json=TTS)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "not_replicated"
    assert resp.headers["RateLimit-Remaining"] == "4"
    assert await sentinel_master.zcard(keys.status_index("pending")) == 0
    assert await sentinel_master.zcard(keys.status_index("failed")) == 1
