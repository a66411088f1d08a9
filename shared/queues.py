"""How deep each priority queue is and how old its oldest entries are, read from Redis.

A priority's stream holds the entries waiting for a validator and those a validator is
working on (the consumer group's pending list); finished entries are deleted. Waiting
entries are the ones after the group's last-delivered id. Ages come from the entries' ids,
which carry Redis' clock in milliseconds, and are measured against Redis' own ``TIME``: no
host's clock enters. One script reads every stream, so the figures are one consistent
snapshot in one round trip. The gateway's queue gauges and its admin endpoints use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys
from shared.tasks import PRIORITY_ORDER, Priority

# KEYS: the streams. ARGV: the consumer group. Returns {now_ms, then per stream: depth,
# in flight, oldest waiting entry's ms (-1: none), oldest in-flight entry's ms (-1: none)}.
_READ = """
local function ms(id) return tonumber(string.match(id, '^(%d+)')) end
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
for _, key in ipairs(KEYS) do
  local depth = redis.call('XLEN', key)
  local pending, last = 0, nil
  if redis.call('EXISTS', key) == 1 then
    for _, group in ipairs(redis.call('XINFO', 'GROUPS', key)) do
      local f = {}
      for i = 1, #group, 2 do f[group[i]] = group[i + 1] end
      if f['name'] == ARGV[1] then
        pending = tonumber(f['pending'])
        last = f['last-delivered-id']
      end
    end
  end
  local in_flight_ms = -1
  if pending > 0 then
    local summary = redis.call('XPENDING', key, ARGV[1])
    if summary[2] then in_flight_ms = ms(summary[2]) end
  end
  local first
  if last then
    first = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
  else
    first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  end
  local waiting_ms = -1
  if #first > 0 then waiting_ms = ms(first[1][1]) end
  table.insert(out, depth)
  table.insert(out, pending)
  table.insert(out, waiting_ms)
  table.insert(out, in_flight_ms)
end
return out
"""


@dataclass(frozen=True)
class QueueFigures:
    """One priority's queue at one moment."""

    priority: Priority
    depth: int  # entries in the stream: waiting plus in flight
    in_flight: int  # delivered to a validator and not finished (the group's pending list)
    oldest_waiting: float | None  # seconds the oldest undelivered entry has waited
    oldest_in_flight: float | None  # seconds since the oldest in-flight entry was queued

    @property
    def waiting(self) -> int:
        """Entries no validator has taken yet."""
        return max(0, self.depth - self.in_flight)

    def view(self) -> dict[str, object]:
        """The admin endpoints' JSON shape."""
        return {
            "priority": self.priority.value,
            "depth": self.depth,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "oldest_waiting_seconds": _rounded(self.oldest_waiting),
            "oldest_in_flight_seconds": _rounded(self.oldest_in_flight),
        }


class QueueReader:
    """Reads :class:`QueueFigures` for every priority, highest first, in one round trip."""

    def __init__(self, redis: Redis) -> None:
        self._read = redis.register_script(_READ)
        self._keys = [keys.stream(p) for p in PRIORITY_ORDER]

    async def read(self) -> list[QueueFigures]:
        reply = [int(v) for v in await self._read(keys=self._keys, args=[keys.CONSUMER_GROUP])]
        now_ms, rows = reply[0], reply[1:]
        figures = []
        for i, priority in enumerate(PRIORITY_ORDER):
            depth, in_flight, waiting_ms, in_flight_ms = rows[4 * i : 4 * i + 4]
            figures.append(
                QueueFigures(
                    priority,
                    depth,
                    in_flight,
                    _age(now_ms, waiting_ms),
                    _age(now_ms, in_flight_ms),
                )
            )
        return figures


def _age(now_ms: int, entry_ms: int) -> float | None:
    return None if entry_ms < 0 else max(0.0, (now_ms - entry_ms) / 1000)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
