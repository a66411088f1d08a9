"""The rate limiter's fast paths.

- A JSON submission takes its token in the script that stores the task: one Redis script
  call per accepted submission, and a refusal there stores nothing.
- A refusal is remembered in the process until the bucket has a token again: refused
  requests in that window are answered 429 without asking Redis, per client and per group,
  and the memory lapses exactly when Redis would give a token again."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.gateway.ratelimit import LIMITER, Decision, Refusals
from services.gateway.rates import Rate
from shared import keys

TTS = "/api/v1/tts"
BUCKET = keys.rate_bucket("submit", "ip:127.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _post(client, headers: dict[str, str] | None = None):
    return await client.post(TTS, json={"text": "hi"}, headers=headers or {})


async def test_a_remembered_refusal_does_not_reach_redis(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=1/min")
    assert (await _post(client)).status == 202
    first = await _post(client)
    assert first.status == 429
    # The script rewrites the bucket on every call, refusals included: it is left alone now.
    before = await redis.hgetall(BUCKET)
    with capture_logs() as events:
        again = [await _post(client) for _ in range(5)]
    assert [r.status for r in again] == [429] * 5
    # The refusal was logged when the bucket gave it; its repeats get their access line only.
    assert not [e for e in events if e["event"] == "rate_limited"]
    assert [e["status"] for e in events if e["event"] == "request"] == [429] * 5
    assert await redis.hgetall(BUCKET) == before
    assert len(client.app[LIMITER].refusals) == 1
    for resp in again:
        # The same answer Redis would give: headers, code, a wait that only shrinks.
        assert resp.headers["RateLimit-Limit"] == "1"
        assert resp.headers["RateLimit-Remaining"] == "0"
        assert resp.headers["RateLimit-Policy"] == "1;w=60"
        assert 1 <= int(resp.headers["Retry-After"]) <= int(first.headers["Retry-After"])
        assert int(resp.headers["RateLimit-Reset"]) <= int(first.headers["RateLimit-Reset"])
        assert (await resp.json())["error"]["code"] == "rate_limited"
    assert await redis.zcard(keys.ALL_TASKS) == 1


async def test_the_memory_is_per_client(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=1/min", trusted_proxies="127.0.0.1")
    one, two = ({"X-Forwarded-For": address} for address in ("1.1.1.1", "2.2.2.2"))
    assert [(await _post(client, one)).status for _ in range(3)] == [202, 429, 429]
    assert [(await _post(client, two)).status for _ in range(2)] == [202, 429]
    assert len(client.app[LIMITER].refusals) == 2


async def test_the_memory_lapses_when_a_token_is_back(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=2/min")
    limiter = client.app[LIMITER]
    clock = Clock()
    limiter.refusals.clock = clock
    assert [(await _post(client)).status for _ in range(3)] == [202, 202, 429]
    wait = float(int((await _post(client)).headers["Retry-After"]))
    # Just before the token is back: still refused from memory, Redis untouched.
    before = await redis.hgetall(BUCKET)
    clock.now += 29.5
    assert (await _post(client)).status == 429
    assert await redis.hgetall(BUCKET) == before
    # Past it (and Redis told the same 30 s went by): asked again, and accepted.
    clock.now += 1.0
    at = float(await redis.hget(BUCKET, "at"))
    await redis.hset(BUCKET, "at", repr(at - 30))
    assert (await _post(client)).status == 202
    assert len(limiter.refusals) == 0
    assert 1 <= wait <= 30


@contextlib.asynccontextmanager
async def _scripts_run(url: str) -> AsyncIterator[list[list[str]]]:
    """The key lists of the scripts Redis runs inside the block, as MONITOR shows them.
    (Counting EVALSHA in INFO commandstats would also count the gateway's periodic queue
    collector and the retry after a NOSCRIPT.)"""
    seen: list[list[str]] = []
    ready = asyncio.Event()

    async def watch() -> None:
        async with Redis.from_url(url) as conn, conn.monitor() as monitor:
            ready.set()
            async for entry in monitor.listen():
                words = shlex.split(entry["command"])
                if words and words[0].upper() in ("EVALSHA", "EVAL"):
                    seen.append(words[3 : 3 + int(words[2])])

    watcher = asyncio.create_task(watch())
    await ready.wait()
    try:
        yield seen
        await asyncio.sleep(0.2)  # MONITOR lags its commands a little
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_a_json_submission_is_one_script_call_token_included(
    make_gateway, redis, redis_server
):
    client = await make_gateway(rate_limits="submit=2/min")
    assert (await _post(client)).status == 202  # the scripts are loaded now
    async with _scripts_run(redis_server.url) as scripts:
        second = await _post(client)
        refused = await _post(client)
    assert second.status == 202 and second.headers["RateLimit-Remaining"] == "0"
    assert refused.status == 429 and refused.headers["RateLimit-Remaining"] == "0"
    assert await redis.zcard(keys.ALL_TASKS) == 2

    # Each request ran one script, the create, holding the bucket too (the refused one
    # stored nothing in it); no other script touched a task or the bucket.
    def touches_a_task(script_keys: list[str]) -> bool:
        return any(key.startswith("audio:task:") for key in script_keys)

    creates = [k for k in scripts if touches_a_task(k)]
    assert len(creates) == 2 and all(BUCKET in k for k in creates), scripts
    assert not [k for k in scripts if BUCKET in k and not touches_a_task(k)]


async def test_an_idempotent_submission_takes_its_token_first(make_gateway, redis):
    client = await make_gateway(rate_limits="submit=1/min")
    headers = {"Idempotency-Key": "fast-path-1"}
    assert (await _post(client, headers)).status == 202
    assert (await _post(client, headers)).status == 429  # the limit comes before the replay
    assert await redis.zcard(keys.ALL_TASKS) == 1


def _refusal(rate: Rate, wait: float) -> Decision:
    return Decision(False, rate, remaining=0.0, wait=wait, reset=60.0)


def test_refusals_expire_at_the_wait_and_keep_to_their_size():
    clock = Clock()
    rate = Rate(1, "min")
    refusals = Refusals(size=2, clock=clock)
    refusals.remember("submit", "a", _refusal(rate, 10.0))
    clock.now += 4
    known = refusals.check("submit", "a", rate)
    assert known is not None and not known.allowed
    assert known.wait == 6.0 and known.reset == 56.0
    assert refusals.check("read", "a", rate) is None  # another group
    assert refusals.check("submit", "b", rate) is None  # another client
    assert refusals.check("submit", "a", Rate(5, "min")) is None  # another rate (a key's own)
    clock.now += 6
    assert refusals.check("submit", "a", rate) is None and len(refusals) == 0
    for name in ("a", "b", "c"):
        refusals.remember("submit", name, _refusal(rate, 10.0))
    assert len(refusals) == 2 and refusals.check("submit", "a", rate) is None


def test_many_refusals_fill_no_more_than_the_bound():
    refusals = Refusals(size=100, clock=time.monotonic)
    for i in range(1000):
        refusals.remember("submit", f"ip:{i}", _refusal(Rate(1, "min"), 30.0))
    assert len(refusals) == 100
