"""Token-bucket rate limits per identity and endpoint group, shared by every replica.

One Lua script takes a token, refilling the bucket from Redis' own clock (``TIME``): all
gateway replicas share the buckets and no replica's clock matters. A bucket of ``COUNT``
tokens refills ``COUNT`` per period (``60/min``: bursts of 60, then one a second).

Answers carry the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers):
``RateLimit-Limit`` (bucket size), ``RateLimit-Remaining`` (whole tokens left),
``RateLimit-Reset`` (seconds until full again) and ``RateLimit-Policy`` (``60;w=60``);
a refusal is a 429 with ``Retry-After`` (seconds until a token is there).

A refusal is remembered in the process until the bucket has a token again (the wait Redis
computed): the bucket gains tokens only with time, so every request in that window would be
refused by the script too, and is refused without a Redis round trip (the cheap 429 path).
Accepted requests always go to Redis, so replicas never disagree on a token given out.

While Redis is unreachable, or full (maxmemory reached: the bucket cannot be written), the
limiter lets requests through (logged): everything worth limiting needs Redis too and
answers 503 meanwhile (a submission: ``storage_full``), reads of a full Redis keep working,
and health probes stay truthful.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.gateway.errors import ApiError
from services.gateway.policy import policy_for
from services.gateway.rates import Rate, parse_limits
from services.gateway.state import API_KEY, IDENTITY, SETTINGS
from shared import keys
from shared.http import Handler
from shared.redis import storage_full

log = structlog.get_logger("gateway.ratelimit")

# KEYS: the bucket hash. ARGV: capacity, tokens added per second, tokens this request costs.
# Returns {allowed 0/1, tokens left, seconds until `cost` tokens, seconds until full}; the
# fractions as strings (Lua numbers would be truncated to integers on the way out).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
-- A clock that went back (Redis failed over to another host) refills nothing.
if now > at then tokens = math.min(capacity, tokens + (now - at) * rate) end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
local full = (capacity - tokens) / rate
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'at', string.format('%.6f', now))
-- A bucket left alone refills completely; past that it can go.
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
return {allowed, string.format('%.6f', tokens), string.format('%.6f', wait),
        string.format('%.6f', full)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rate: Rate
    remaining: float
    wait: float  # seconds until the request could pass
    reset: float  # seconds until the bucket is full

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.rate.count),
            "RateLimit-Remaining": str(max(0, math.floor(self.remaining))),
            "RateLimit-Reset": str(math.ceil(self.reset)),
            "RateLimit-Policy": f"{self.rate.count};w={self.rate.period}",
        }


@dataclass(frozen=True)
class _Refusal:
    decision: Decision
    at: float  # the clock's time of the refusal
    until: float  # ... when a token is there again


class Refusals:
    """Buckets this process saw refuse, until they have a token again: (group, identity,
    rate) -> the refusal. At most ``size`` entries (expired ones go first, then the oldest),
    so many refused addresses cost bounded memory."""

    def __init__(self, size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._known: dict[tuple[str, str, Rate], _Refusal] = {}

    def check(self, group: str, identity: str, rate: Rate) -> Decision | None:
        """The refusal still in force for this bucket, brought up to now; None if none."""
        key = (group, identity, rate)
        known = self._known.get(key)
        if known is None:
            return None
        now = self.clock()
        if now >= known.until:
            del self._known[key]
            return None
        elapsed = now - known.at
        first = known.decision
        return replace(
            first,
            remaining=min(rate.count, first.remaining + elapsed * rate.per_second),
            wait=known.until - now,
            reset=max(0.0, first.reset - elapsed),
        )

    def remember(self, group: str, identity: str, decision: Decision) -> None:
        now = self.clock()
        if len(self._known) >= self.size:
            self._known = {k: v for k, v in self._known.items() if v.until > now}
            while len(self._known) >= self.size:
                del self._known[next(iter(self._known))]
        self._known[group, identity, decision.rate] = _Refusal(decision, now, now + decision.wait)

    def __len__(self) -> int:
        return len(self._known)


class RateLimiter:
    """Takes tokens from per-identity buckets in Redis; refusals are remembered in
    :attr:`refusals` and answered from there while they last."""

    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)
        self.refusals = Refusals()

    async def take(self, group: str, identity: str, rate: Rate, cost: int = 1) -> Decision:
        # Remembered refusals are of single tokens: a request costing more is asked of Redis.
        known = self.refusals.check(group, identity, rate) if cost == 1 else None
        if known is not None:
            return known
        allowed, remaining, wait, reset = await self._take(
            keys=[keys.rate_bucket(group, identity)],
            args=[rate.count, repr(rate.per_second), cost],
        )
        decision = Decision(bool(int(allowed)), rate, float(remaining), float(wait), float(reset))
        if not decision.allowed and cost == 1:
            self.refusals.remember(group, identity, decision)
        return decision


@lru_cache(maxsize=1024)
def _key_limits(text: str) -> dict[str, Rate | None]:
    return parse_limits(text)


def rate_for(request: web.Request, group: str) -> Rate | None:
    """The limit that applies: the caller's key's own for this group, else RATE_LIMITS'."""
    record = request.get(API_KEY)
    if record is not None and record.rate:
        own = _key_limits(record.rate)
        if group in own:
            return own[group]
    for limit in request.app[SETTINGS].rate_limits:
        if limit.group == group:
            return limit.rate
    return None


LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a token for the caller (IDENTITY, set by the auth middleware) or answer 429."""
    policy = policy_for(request)
    identity = request.get(IDENTITY)
    rate = rate_for(request, policy.group) if policy and identity else None
    if policy is None or identity is None or rate is None:
        return await handler(request)
    try:
        decision = await request.app[LIMITER].take(policy.group, identity, rate)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("ratelimit_unavailable", path=request.path, error=str(exc))
        return await handler(request)
    except RedisError as exc:
        if not storage_full(exc):
            raise
        log.warning("ratelimit_storage_full", path=request.path)
        return await handler(request)
    if not decision.allowed:
        retry = max(1, math.ceil(decision.wait))
        log.info("rate_limited", identity=identity, group=policy.group, retry_after=retry)
        raise ApiError(
            429,
            "rate_limited",
            f"more than {rate} {policy.group} requests; retry in {retry} s",
            headers={"Retry-After": str(retry), **decision.headers()},
        )
    try:
        response = await handler(request)
    except ApiError as exc:
        # The handler's refusals (400, 404...) still tell the caller where it stands.
        exc.headers.update(decision.headers())
        raise
    if not response.prepared:
        response.headers.update(decision.headers())
    return response
