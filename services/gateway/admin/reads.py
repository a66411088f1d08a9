"""What the admin endpoints show, read from Redis: the figures every service already
writes there and what validators publish for operators (services.validator.operations).
Nothing here depends on which gateway or validator replica is asked or running."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from redis.asyncio import Redis

from services.gateway.stats import read_network
from shared import keys, timeline
from shared.queues import QueueReader
from shared.store import TaskStore

#: Dead-letter entries listed on the page, newest first.
RECENT_DEAD_LETTERS = 5


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace") for k, v in raw.items()}


def _float(value: str | bytes | None) -> float | None:
    try:
        return float(value) if value not in (None, b"", "") else None
    except ValueError:
        return None


async def queues(reader: QueueReader, store: TaskStore) -> dict[str, Any]:
    """Each priority's depth, waiting and in-flight entries and their oldest ages, and the
    task counts per status."""
    figures = await reader.read()
    return {
        "timestamp": time.time(),
        "queues": [f.view() for f in figures],
        "tasks": await store.counts(),
    }


async def validators(redis: Redis, now: float) -> list[dict[str, Any]]:
    """The replicas whose published figures have not expired, by consumer name."""
    names = [n.decode() for n in await redis.zrangebyscore(keys.OPS_VALIDATORS, "-inf", "+inf")]
    if not names:
        return []
    published = await redis.mget([keys.ops_validator(n) for n in names])
    live = [view for view in map(_json, published) if isinstance(view, dict)]
    for view in live:
        view["age_seconds"] = round(max(0.0, now - float(view.get("at", now))), 1)
    return sorted(live, key=lambda v: str(v.get("consumer")))


async def miners(redis: Redis) -> dict[str, Any]:
    """One row per miner: the registry a validator published, with the running score,
    answer and failure counts, median latency and requests in flight (every live replica's
    summed). Without a published registry, the miners Redis has scores for (uid unknown)."""
    now = time.time()
    registry = _json(await redis.get(keys.OPS_MINERS))
    scores = {k.decode(): float(v) for k, v in (await redis.hgetall(keys.MINER_SCORES)).items()}
    rows = registry if isinstance(registry, list) else [{"uid": None, "hotkey": h} for h in scores]
    hotkeys = [str(row.get("hotkey")) for row in rows]
    async with redis.pipeline(transaction=False) as pipe:
        for hotkey in hotkeys:
            pipe.hmget(keys.miner_stats(hotkey), "tries", "failures", "consecutive_failures")
            pipe.lrange(keys.miner_latencies(hotkey), 0, -1)
        replies = await pipe.execute()
    in_flight: dict[str, int] = {}
    for replica in await validators(redis, now):
        for hotkey, count in (replica.get("miners_in_flight") or {}).items():
            in_flight[hotkey] = in_flight.get(hotkey, 0) + int(count)
    out = []
    for i, (row, hotkey) in enumerate(zip(rows, hotkeys, strict=True)):
        (tries, failures, streak), latencies = replies[2 * i], replies[2 * i + 1]
        samples = [float(v) for v in latencies]
        tried, failed = int(tries or 0), int(failures or 0)
        out.append(
            {
                "uid": row.get("uid"),
                "hotkey": hotkey,
                "stake": row.get("stake"),
                "score": scores.get(hotkey),
                "answers": max(0, tried - failed),
                "failures": failed,
                "consecutive_failures": int(streak or 0),
                "latency_p50": round(statistics.median(samples), 4) if samples else None,
                "latency_samples": len(samples),
                "in_flight": in_flight.get(hotkey, 0),
            }
        )
    out.sort(key=lambda m: (m["uid"] is None, m["uid"] or 0, m["hotkey"]))
    return {"timestamp": now, "registry_published": isinstance(registry, list), "miners": out}


async def instances(redis: Redis) -> dict[str, Any]:
    """The lb's GET /health answer as a validator last saw it (None: nobody published)."""
    published = _json(await redis.get(keys.OPS_LB))
    now = time.time()
    if isinstance(published, dict):
        published["age_seconds"] = round(max(0.0, now - float(published.get("at", now))), 1)
    return {"timestamp": now, "lb": published}


async def webhooks(redis: Redis, now: float) -> dict[str, Any]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcount(keys.WEBHOOK_QUEUE, "-inf", now)
        pipe.zcard(keys.WEBHOOK_QUEUE)
        pipe.zrangebyscore(keys.WEBHOOK_QUEUE, "-inf", now, start=0, num=1, withscores=True)
        due, queued, oldest = await pipe.execute()
    return {
        "due": int(due),
        "scheduled": max(0, int(queued) - int(due)),
        "oldest_due_seconds": round(max(0.0, now - oldest[0][1]), 1) if oldest else None,
    }


async def dead_letters(redis: Redis, now: float) -> dict[str, Any]:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(keys.DEAD_LETTER_STREAM)
        pipe.xrevrange(keys.DEAD_LETTER_STREAM, count=RECENT_DEAD_LETTERS)
        count, recent = await pipe.execute()
    entries = []
    for _, fields in recent:
        entry = _text(fields)
        at = _float(entry.get("at"))
        entries.append(
            {
                "task_id": entry.get("task_id"),
                "priority": entry.get("priority"),
                "deliveries": int(entry.get("deliveries") or 0),
                "age_seconds": round(max(0.0, now - at), 1) if at is not None else None,
            }
        )
    return {"count": int(count), "recent": entries}


async def weights(redis: Redis, now: float) -> dict[str, Any]:
    """The last weight setting (keys.WEIGHTS_LAST), with its age and when the next is due."""
    record = _text(await redis.hgetall(keys.WEIGHTS_LAST))
    set_at, round_at = _float(record.get("set_at")), _float(record.get("round_at"))
    interval = _float(record.get("interval"))
    return {
        "set_at": set_at,
        "set_age_seconds": round(now - set_at, 1) if set_at is not None else None,
        "mode": record.get("mode"),
        "uids": int(record["uids"]) if record.get("uids", "").isdigit() else None,
        "last_round_at": round_at,
        "last_round_outcome": record.get("outcome"),
        "interval_seconds": interval,
        "since": _float(record.get("since")),
    }


async def overview(redis: Redis) -> dict[str, Any]:
    """Webhooks, dead letters, weights, validator replicas and the network figures."""
    now = time.time()
    return {
        "timestamp": now,
        "webhooks": await webhooks(redis, now),
        "dead_letters": await dead_letters(redis, now),
        "weights": await weights(redis, now),
        "validators": await validators(redis, now),
        "network": await read_network(redis),
    }


async def chart(redis: Redis) -> dict[str, Any]:
    """Tasks finished and their latency per bucket over the last WINDOW_SECONDS."""
    now = time.time()
    points = await timeline.read(redis, now)
    return {
        "timestamp": now,
        "bucket_seconds": timeline.BUCKET_SECONDS,
        "window_seconds": timeline.WINDOW_SECONDS,
        "points": [p.view() for p in points],
    }
