"""Token-bucket rate limits per identity and endpoint group, shared by every replica.

One Lua script (``shared.storescripts.TAKE``) takes a token, refilling the bucket from
Redis' own clock (``TIME``): all gateway replicas share the buckets and no replica's clock
matters. A bucket of ``COUNT``
tokens refills ``COUNT`` per period (``60/min``: bursts of 60, then one a second).

Answers carry the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers):
``RateLimit-Limit`` (bucket size), ``RateLimit-Remaining`` (whole tokens left),
``RateLimit-Reset`` (seconds until full again) and ``RateLimit-Policy`` (``60;w=60``);
a refusal is a 429 with ``Retry-After`` (seconds until a token is there).

A refusal is remembered in the process until the bucket has a token again (the wait Redis
computed): the bucket gains tokens only with time, so every request in that window would be
refused by the script too, and is refused without a Redis round trip (the cheap 429 path).
Accepted requests always go to Redis, so replicas never disagree on a token given out.

A JSON submission without an Idempotency-Key takes its token in the script that stores the
task (``CREATE_LIMITED``): one Redis round trip instead of two. Its handler reads and
validates the body first; a request refused before the store (a bad body, 415, 413) takes
its token then, so the caller sees what it saw before: 429 when out of tokens, else the
error with the RateLimit headers, one token spent either way.

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
from services.gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from services.gateway.policy import policy_for
from services.gateway.rates import Rate, parse_limits
from services.gateway.state import API_KEY, IDENTITY, SETTINGS
from shared import keys, storescripts
from shared.buckets import Bucket, Token
from shared.http import Handler
from shared.redis import storage_full

log = structlog.get_logger("gateway.ratelimit")


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
        self._take = redis.register_script(storescripts.TAKE)
        self.refusals = Refusals()

    async def take(self, group: str, identity: str, rate: Rate, cost: int = 1) -> Decision:
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
#: Names of the routes whose handler takes the token itself, with its write (see above).
DEFERRED_ROUTES = web.AppKey("deferred_token_routes", frozenset)


@dataclass
class Deferred:
    """The token a handler takes together with its write; ``decision`` once it did."""

    group: str
    identity: str
    rate: Rate
    limiter: RateLimiter
    decision: Decision | None = None

    def token(self) -> Token:
        rate = self.rate
        return Token(keys.rate_bucket(self.group, self.identity), rate.count, rate.per_second)

    def given(self, bucket: Bucket) -> None:
        self.decision = Decision(True, self.rate, bucket.remaining, bucket.wait, bucket.reset)

    def refused(self, bucket: Bucket) -> ApiError:
        """The 429 to raise: the bucket had no token (remembered, as any refusal)."""
        self.decision = Decision(False, self.rate, bucket.remaining, bucket.wait, bucket.reset)
        self.limiter.refusals.remember(self.group, self.identity, self.decision)
        return _refusal(self.decision, self.group, self.identity)


DEFERRED = web.RequestKey("deferred_token", Deferred)


def _refusal(decision: Decision, group: str, identity: str, *, logged: bool = True) -> ApiError:
    retry = max(1, math.ceil(decision.wait))
    if logged:
        log.info("rate_limited", identity=identity, group=group, retry_after=retry)
    return ApiError(
        429,
        "rate_limited",
        f"more than {decision.rate} {group} requests; retry in {retry} s",
        headers={"Retry-After": str(retry), **decision.headers()},
    )


async def _take(request: web.Request, group: str, identity: str, rate: Rate) -> Decision | None:
    """A token from Redis; None (logged) while Redis is unreachable or full: let through."""
    try:
        return await request.app[LIMITER].take(group, identity, rate)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("ratelimit_unavailable", path=request.path, error=str(exc))
        return None
    except RedisError as exc:
        if not storage_full(exc):
            raise
        log.warning("ratelimit_storage_full", path=request.path)
        return None


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a token for the caller (IDENTITY, set by the auth middleware) or answer 429."""
    policy = policy_for(request)
    identity = request.get(IDENTITY)
    rate = rate_for(request, policy.group) if policy and identity else None
    if policy is None or identity is None or rate is None:
        return await handler(request)
    limiter = request.app[LIMITER]
    known = limiter.refusals.check(policy.group, identity, rate)
    if known is not None:
        # Logged when the bucket refused; its repeats, answered from memory, only get
        # their access line (status 429): a flood of them costs half as many log lines.
        raise _refusal(known, policy.group, identity, logged=False)
    if (
        request.match_info.route.name in request.app[DEFERRED_ROUTES]
        and IDEMPOTENCY_HEADER not in request.headers
    ):
        deferred = Deferred(policy.group, identity, rate, limiter)
        request[DEFERRED] = deferred
        return await _with_deferred(request, handler, deferred)
    decision = await _take(request, policy.group, identity, rate)
    if decision is None:
        return await handler(request)
    if not decision.allowed:
        raise _refusal(decision, policy.group, identity)
    return await _answer(request, handler, decision)


async def _answer(request: web.Request, handler: Handler, decision: Decision) -> web.StreamResponse:
    """The handler's answer, with the RateLimit headers of the token it was given."""
    try:
        response = await handler(request)
    except ApiError as exc:
        # The handler's refusals (400, 404...) still tell the caller where it stands.
        exc.headers.update(decision.headers())
        raise
    if not response.prepared:
        response.headers.update(decision.headers())
    return response


async def _with_deferred(
    request: web.Request, handler: Handler, deferred: Deferred
) -> web.StreamResponse:
    """Run a handler that takes its token with its write; one that answered without
    getting that far has its token taken here, as it would have been before the handler."""
    try:
        response = await handler(request)
    except ApiError as exc:
        decision = deferred.decision
        if decision is None:
            decision = await _take(request, deferred.group, deferred.identity, deferred.rate)
            if decision is not None and not decision.allowed:
                raise _refusal(decision, deferred.group, deferred.identity) from None
        if decision is not None and decision.allowed:
            exc.headers.update(decision.headers())
        raise
    except web.HTTPException:
        if deferred.decision is None:  # aiohttp's own 413: a token spent, as before
            decision = await _take(request, deferred.group, deferred.identity, deferred.rate)
            if decision is not None and not decision.allowed:
                raise _refusal(decision, deferred.group, deferred.identity) from None
        raise
    decision = deferred.decision
    if decision is None:  # answered without storing (a 408 already sent): charged all the same
        decision = await _take(request, deferred.group, deferred.identity, deferred.rate)
        if decision is not None and not decision.allowed and not response.prepared:
            raise _refusal(decision, deferred.group, deferred.identity)
    if decision is not None and decision.allowed and not response.prepared:
        response.headers.update(decision.headers())
    return response
