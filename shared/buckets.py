"""Token buckets in Redis (the gateway's rate limits): a request for a token, and what the
bucket said. The Lua that takes a token is in :mod:`shared.storescripts` (``TAKE`` alone,
``CREATE_LIMITED`` together with a task's creation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A rate-limit token :meth:`TaskStore.create_probed` takes in the same script as the
    task's creation: the task is stored only if the bucket gives it."""

    bucket: str  # the bucket hash's key (keys.rate_bucket)
    capacity: int
    per_second: float
    cost: int = 1


@dataclass(frozen=True)
class Bucket:
    """A bucket after a :class:`Token` was asked of it (the rate-limit headers' figures)."""

    remaining: float  # tokens left
    wait: float  # seconds until the token would be there (0 when given)
    reset: float  # seconds until the bucket is full


class TokenRefused(Exception):
    """The bucket had no token: nothing but the bucket was written."""

    def __init__(self, bucket: Bucket) -> None:
        super().__init__(f"no token: one in {bucket.wait:.3f} s")
        self.bucket = bucket


def bucket_from_reply(figures: Sequence[bytes | str]) -> Bucket:
    """The script's three figures (tokens, wait, seconds until full), sent as strings."""
    remaining, wait, reset = (float(f) for f in figures)
    return Bucket(remaining, wait, reset)
