"""Webhook deliveries: queued in Redis, signed per Standard Webhooks, retried with backoff.

A delivery is a hash (keys.webhook(id)) plus its due time in the zset keys.WEBHOOK_QUEUE.
Its id is derived from the task and event, so queueing it twice (a replica finishing a
task another already finished) is a no-op. Replicas lease due deliveries atomically; one
that dies mid-delivery leaves a lease that expires and another replica retries.

A payload carries the output base64-encoded (``output_data``) only while the whole payload
stays within 64 KiB (it is a Redis value until delivered); above that it carries only
``output_url``, where the gateway serves the output.

Addresses are checked when a socket is opened, after DNS resolution, so a hostname that
resolves (or re-resolves) to a loopback, private, link-local or metadata address is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import socket
import time
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.validator.metrics import Metrics
from services.validator.storagefull import refused
from shared import keys
from shared.blobs import BlobError
from shared.logging import get_logger
from shared.periodic import pause
from shared.redis import REDIS_DOWN_ERRORS, wait_for_redis
from shared.store import TaskStore
from shared.taskdata import INLINE_MAX
from shared.tasks import Status, Task
from shared.webhookevents import delivery, delivery_id, render_payload

__all__ = ["Webhooks", "delivery_id", "render_payload", "webhook_output"]

log = get_logger("validator.webhooks")

USER_AGENT = "bittensor-audio-validator/1"
BATCH = 20
LEASE_SLACK = 5.0

# KEYS: delivery hash, queue. ARGV: id, due, field, value, ... Returns 1 if newly queued.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

# KEYS: queue. ARGV: now, lease until, limit. Leases due ids by pushing their due time on.
_LEASE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class ForbiddenAddress(OSError):
    """The webhook URL resolved to an address the validator must not call."""


def secret_key(secret: str) -> bytes:
    """The HMAC key: a ``whsec_`` secret is base64 after the prefix, anything else is raw."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: v1, base64 HMAC-SHA256 of "id.timestamp.body"."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def address_allowed(host: str) -> bool:
    """False for loopback, private, link-local, metadata and other non-global addresses."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def guarded_socket_factory(addr_info: Any) -> socket.socket:
    """aiohttp socket factory: refuses non-public addresses at connect time."""
    family, type_, proto, _, sockaddr = addr_info
    if not address_allowed(sockaddr[0]):
        raise ForbiddenAddress("webhook address refused: not a public address")
    return socket.socket(family=family, type=type_, proto=proto)


def create_session(allow_private: bool) -> aiohttp.ClientSession:
    """The session webhooks go out on: no proxies from the environment, no cookies."""
    connector = aiohttp.TCPConnector(
        limit=50, socket_factory=None if allow_private else guarded_socket_factory
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
    )


async def webhook_output(store: TaskStore, task: Task) -> bytes | None:
    """The output to embed in ``task``'s webhook: None when it cannot fit in a payload of
    INLINE_MAX bytes (or cannot be read now: the payload then carries output_url only)."""
    if task.status is not Status.COMPLETED or (task.output_size or 0) > INLINE_MAX:
        return None
    try:
        return await store.data.read_output(task)
    except BlobError as exc:
        log.warning("webhook_output_unreadable", task_id=task.task_id, error=str(exc))
        return None


class Webhooks:
    """Queues deliveries for finished tasks and runs the delivery loop."""

    def __init__(
        self,
        redis: Redis,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        *,
        secret: str | None,
        max_attempts: int,
        retry_base: float,
        retry_max: float,
        timeout: float,
        poll_interval: float,
        retention: int,
    ) -> None:
        self.redis = redis
        self.session = session
        self.metrics = metrics
        self.secret = secret
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.retention = retention
        self._enqueue = redis.register_script(_ENQUEUE)
        self._lease = redis.register_script(_LEASE)

    async def enqueue(self, task: Task, output: bytes | None) -> bool:
        """Queue the task's final event for its callback_url (no-op without one)."""
        record = delivery(task, output)
        if record is None:
            return False
        queued = await self._enqueue(
            keys=[keys.webhook(record.id), keys.WEBHOOK_QUEUE],
            args=[record.id, time.time(), *record.flat()],
        )
        return bool(queued)

    def backoff(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` failed attempts (x4 each time)."""
        return min(self.retry_base * 4 ** (failures - 1), self.retry_max)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver due webhooks until ``stop``; waits out Redis outages."""
        while not stop.is_set():
            try:
                delivered = await self.deliver_due()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("webhooks_redis_unavailable", error=str(exc))
                await wait_for_redis(self.redis, stop=stop)
                continue
            except RedisError as exc:
                # Leased deliveries come due again when their lease ends.
                if not refused(exc, "webhooks", self.metrics):
                    raise
                delivered = 0
            if not delivered and await pause(stop, self.poll_interval):
                return

    async def deliver_due(self) -> int:
        """Lease the deliveries that are due and attempt each once; returns how many."""
        now = time.time()
        ids = await self._lease(
            keys=[keys.WEBHOOK_QUEUE], args=[now, now + self.timeout + LEASE_SLACK, BATCH]
        )
        await asyncio.gather(*(self._attempt(i.decode()) for i in ids))
        return len(ids)

    async def _attempt(self, msg_id: str) -> None:
        raw = await self.redis.hgetall(keys.webhook(msg_id))
        if not raw:
            await self.redis.zrem(keys.WEBHOOK_QUEUE, msg_id)
            return
        record = {k.decode(): v for k, v in raw.items()}
        url, body = record["url"].decode(), record["body"]
        attempts = int(record.get("attempts", b"0")) + 1
        outcome, detail = await self._post(msg_id, url, body)
        key = keys.webhook(msg_id)
        if outcome == "delivered" or outcome == "refused" or attempts >= self.max_attempts:
            final = {"delivered": "delivered", "refused": "refused"}.get(outcome, "gave_up")
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"attempts": attempts, "state": final, "last": detail})
                pipe.expire(key, self.retention)
                pipe.zrem(keys.WEBHOOK_QUEUE, msg_id)
                await pipe.execute()
            self.metrics.webhooks.labels(final).inc()
            event = "webhook_delivered" if final == "delivered" else "webhook_abandoned"
            log.info(event, id=msg_id, attempts=attempts, state=final, detail=detail)
            return
        delay = self.backoff(attempts)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"attempts": attempts, "last": detail})
            pipe.zadd(keys.WEBHOOK_QUEUE, {msg_id: time.time() + delay})
            await pipe.execute()
        self.metrics.webhooks.labels("retry").inc()
        log.info("webhook_retry", id=msg_id, attempt=attempts, retry_in=delay, detail=detail)

    async def _post(self, msg_id: str, url: str, body: bytes) -> tuple[str, str]:
        """One attempt: ("delivered" | "failed" | "refused", detail). Only 2xx delivers."""
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self.secret:
            headers["webhook-signature"] = signature(self.secret, msg_id, timestamp, body)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    await resp.content.read(1024)
                    status = resp.status
        except TimeoutError:
            return "failed", "timeout"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddress) or "webhook address refused" in str(exc):
                return "refused", "address not allowed"
            return "failed", f"connect: {exc.os_error}"
        except (aiohttp.ClientError, ValueError) as exc:
            return "failed", repr(exc)[:200]
        if 200 <= status < 300:
            return "delivered", f"http {status}"
        return "failed", f"http {status}"
