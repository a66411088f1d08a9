"""API keys in Redis: created, looked up, listed and revoked; only SHA-256 digests stored.

A key reads ``ak_<8 hex>_<43 url-safe characters>``. The first part, ``ak_<8 hex>``, is
its visible prefix: unique, stored in clear, shown by ``keys list`` and used to revoke it
and as the caller's identity (``key:<prefix>``). The whole key is shown once, at
creation; Redis holds ``sha256(key)`` and looks a presented key up by that digest, so a
copy of the database lets no one in. A revoked key keeps its record (marked revoked), so
its prefix, and with it the identity owning its tasks, is never handed out again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys
from shared.tasks import now

KEY_PREFIX = "ak_"
#: Longest credential even looked up: longer ones are refused without touching Redis.
MAX_KEY_CHARS = 200

# KEYS: prefix index, the key's record. ARGV: prefix, digest, field, value, ...
# Returns 0, writing nothing, when the prefix is taken.
_CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
"""


@dataclass(frozen=True)
class ApiKey:
    """One key's record, as stored (never the key itself)."""

    prefix: str
    name: str
    created_at: float
    rate: str | None = None  # its own limits, in the RATE_LIMITS syntax
    revoked_at: float | None = None
    admin: bool = False  # may also open /dashboard and the admin endpoints

    @property
    def identity(self) -> str:
        return f"key:{self.prefix}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> ApiKey:
        d = {k.decode(): v.decode() for k, v in raw.items()}
        return cls(
            prefix=d["prefix"],
            name=d["name"],
            created_at=float(d["created_at"]),
            rate=d.get("rate") or None,
            revoked_at=float(d["revoked_at"]) if d.get("revoked_at") else None,
            admin=d.get("admin") == "1",
        )


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate() -> tuple[str, str]:
    """A fresh (prefix, full key)."""
    prefix = f"{KEY_PREFIX}{secrets.token_hex(4)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


class ApiKeys:
    """The key registry over one Redis client."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._create = redis.register_script(_CREATE)

    async def create(
        self, name: str, rate: str | None = None, *, admin: bool = False
    ) -> tuple[ApiKey, str]:
        """Store a new key (an operator's with ``admin``); returns its record and the full
        key (shown once)."""
        while True:
            prefix, key = generate()
            record = ApiKey(prefix=prefix, name=name, created_at=now(), rate=rate, admin=admin)
            fields = {"prefix": prefix, "name": name, "created_at": repr(record.created_at)}
            if rate:
                fields["rate"] = rate
            if admin:
                fields["admin"] = "1"
            flat = [item for pair in fields.items() for item in pair]
            stored = await self._create(
                keys=[keys.API_KEYS, keys.api_key(digest(key))],
                args=[prefix, digest(key), *flat],
            )
            if int(stored):
                return record, key
            # 2^32 prefixes: a collision is rare, and simply draws again.

    async def lookup(self, key: str) -> ApiKey | None:
        """The record of a presented key (revoked ones included), or None."""
        if not key or len(key) > MAX_KEY_CHARS or not key.isascii():
            return None
        raw = await self.redis.hgetall(keys.api_key(digest(key)))
        return ApiKey.from_hash(raw) if raw else None

    async def all(self) -> list[ApiKey]:
        """Every key ever created, oldest first."""
        digests = await self.redis.hvals(keys.API_KEYS)
        async with self.redis.pipeline(transaction=False) as pipe:
            for d in digests:
                pipe.hgetall(keys.api_key(d.decode()))
            records = await pipe.execute()
        return sorted((ApiKey.from_hash(r) for r in records if r), key=lambda k: k.created_at)

    async def revoke(self, prefix: str) -> ApiKey | None:
        """Revoke the key with this prefix (at once, for every replica); None if unknown.
        Revoking twice keeps the first revocation time."""
        found = await self.redis.hget(keys.API_KEYS, prefix)
        if found is None:
            return None
        record = keys.api_key(found.decode())
        await self.redis.hsetnx(record, "revoked_at", repr(now()))
        return ApiKey.from_hash(await self.redis.hgetall(record))
