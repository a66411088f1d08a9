"""Rate-limit syntax: ``60/min`` rates and ``submit=60/min,read=off`` per-group limits.

One grammar serves RATE_LIMITS and an API key's own ``--rate``: comma-separated entries,
each ``GROUP=RATE``, ``GROUP=off`` or a bare ``RATE`` / ``off`` meaning every group; later
entries win. A rate is ``COUNT/UNIT`` with UNIT one of s, sec, second, m, min, minute, h,
hour, d, day: a bucket of COUNT tokens that refills COUNT tokens per UNIT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError, fields

#: Endpoint groups, each with its own bucket per identity (see services.gateway.policy).
GROUPS: tuple[str, ...] = ("submit", "read", "meta")

_UNITS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}  # fmt: skip
_RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*([a-z]+)\s*$")
OFF = "off"


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``unit``, with bursts of up to ``count``."""

    count: int
    unit: str

    @property
    def period(self) -> int:
        """Seconds in one unit."""
        return _UNITS[self.unit]

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


@dataclass(frozen=True)
class Limit:
    """One group's rate; ``rate`` None means unlimited."""

    group: str
    rate: Rate | None

    def __str__(self) -> str:
        return f"{self.group}={self.rate or OFF}"


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text.lower())
    if not match or match[2] not in _UNITS or int(match[1]) < 1:
        raise ValueError(f"{text.strip()!r} is not a rate such as 60/min")
    return Rate(int(match[1]), match[2])


def parse_limits(text: str) -> dict[str, Rate | None]:
    """The groups ``text`` sets, in the grammar above; ValueError naming the bad entry."""
    limits: dict[str, Rate | None] = {}
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise ValueError("no limit given")
    for entry in entries:
        group, sep, value = entry.partition("=")
        groups = [group.strip().lower()] if sep else list(GROUPS)
        if sep and groups[0] not in GROUPS:
            raise ValueError(f"unknown group {group.strip()!r} (groups: {', '.join(GROUPS)})")
        value = (value if sep else entry).strip()
        rate = None if value.lower() == OFF else parse_rate(value)
        limits.update(dict.fromkeys(groups, rate))
    return limits


def merge(base: tuple[Limit, ...], overrides: dict[str, Rate | None]) -> tuple[Limit, ...]:
    """``base`` with the groups ``overrides`` sets replaced."""
    return tuple(Limit(lim.group, overrides.get(lim.group, lim.rate)) for lim in base)


DEFAULT_LIMITS: tuple[Limit, ...] = (
    Limit("submit", Rate(600, "min")),
    Limit("read", Rate(6000, "min")),
    Limit("meta", Rate(600, "min")),
)


class LimitsField(fields.Field):
    """RATE_LIMITS: entries over :data:`DEFAULT_LIMITS`, loaded as one Limit per group."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple:
        if not isinstance(value, str):
            raise ValidationError("limits such as submit=60/min,read=600/min")
        try:
            return merge(DEFAULT_LIMITS, parse_limits(value))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
