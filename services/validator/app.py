"""Wiring and lifecycle: one aiohttp application owns the Redis client, HTTP sessions,
background loops and the /health + /metrics port.

Start-up never waits for Redis (the loops do, so /health answers meanwhile); shutdown stops
taking work, lets tasks in flight finish for SHUTDOWN_GRACE seconds and releases the rest.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from services.validator import netstats, operations
from services.validator.client import MinerClient
from services.validator.consumer import Consumer, StreamQueue, WorkPool
from services.validator.http import COMPONENTS, LIVENESS, ROUTES, Liveness
from services.validator.metrics import Metrics
from services.validator.miners import (
    ChainClient,
    ChainMiners,
    MinerRegistry,
    MinerSource,
    MinerSourceError,
    StaticMiners,
)
from services.validator.minerstats import MinerStats
from services.validator.processor import Processor
from services.validator.reclaim import Reclaimer
from services.validator.reference import ReferenceClient
from services.validator.settings import ValidatorSettings
from services.validator.storagefull import WaitWhileFull, defer_while_full
from services.validator.webhooks import Webhooks
from services.validator.webhooks import create_session as webhook_session
from services.validator.weights import WeightSetter
from shared.blobs import BlobStore, open_blob_store
from shared.events import EventHub
from shared.http import request_logging_middleware
from shared.janitor import BlobJanitor
from shared.logging import get_logger
from shared.redis import create_redis
from shared.replication import Replication
from shared.store import TaskStore

log = get_logger("validator.app")


@dataclass
class Components:
    """Everything one validator process is made of (reachable from tests via COMPONENTS)."""

    settings: ValidatorSettings
    redis: Redis
    metrics: Metrics
    registry: MinerRegistry
    stats: MinerStats
    queue: StreamQueue
    pool: WorkPool
    processor: Processor
    storage_wait: WaitWhileFull
    consumer: Consumer
    reclaimer: Reclaimer
    weights: WeightSetter
    webhooks: Webhooks
    sessions: list[aiohttp.ClientSession]
    blobs: BlobStore
    janitor: BlobJanitor
    hub: EventHub


SETTINGS = web.AppKey("settings", ValidatorSettings)
WALLET = web.AppKey("wallet", Any)
CHAIN = web.AppKey("chain", Any)
CONSUMER_NAME = web.AppKey("consumer_name", str)


def consumer_name() -> str:
    """Unique per replica: host and pid, plus a suffix for several validators in one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def miner_source(
    settings: ValidatorSettings, own_hotkey: str, chain: ChainClient | None
) -> MinerSource:
    """MINERS_FILE when set (static mode), else the metagraph through ``chain``."""
    if settings.miners_file:
        return StaticMiners(settings.miners_file, own_hotkey)
    if chain is None:
        raise ValueError("chain mode (MINERS_FILE unset) needs a chain client")
    return ChainMiners(chain, settings.bt_netuid, own_hotkey)


def create_app(
    settings: ValidatorSettings,
    *,
    wallet: Any,
    chain: ChainClient | None = None,
    name: str | None = None,
) -> web.Application:
    """The validator as an aiohttp app; running it (AppRunner or web.run_app) runs it all.

    ``wallet`` is a bt.Wallet whose hotkey signs requests; ``chain`` is required in chain
    mode (tests pass an object with a hand-built metagraph).
    """
    app = web.Application(middlewares=[request_logging_middleware("validator.http")])
    app[SETTINGS] = settings
    app[WALLET] = wallet
    app[CHAIN] = chain
    app[CONSUMER_NAME] = name or consumer_name()
    app[LIVENESS] = Liveness()
    app.cleanup_ctx.append(_components)
    app.cleanup_ctx.append(_loops)
    app.router.add_routes(ROUTES)
    return app


async def _components(app: web.Application) -> AsyncIterator[None]:
    settings, wallet = app[SETTINGS], app[WALLET]
    redis = create_redis(settings, socket_timeout=max(10.0, settings.block_timeout + 5.0))
    blobs = open_blob_store(settings)
    await blobs.start()
    metrics = Metrics()
    hotkey = wallet.hotkey
    miners_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), trust_env=False)
    reference_http = aiohttp.ClientSession(trust_env=False)
    hooks_http = webhook_session(settings.webhook_allow_private)
    registry = MinerRegistry(
        miner_source(settings, hotkey.ss58_address, app[CHAIN]), settings.metagraph_sync_interval
    )
    stats = MinerStats(redis, settings.score_alpha)
    queue = StreamQueue(redis, app[CONSUMER_NAME])
    # Watches the tasks in flight for cancellations, over one pub/sub connection.
    hub = EventHub(redis)
    webhooks = Webhooks(
        redis,
        hooks_http,
        metrics,
        secret=settings.webhook_secret,
        max_attempts=settings.webhook_max_attempts,
        retry_base=settings.webhook_retry_base,
        retry_max=settings.webhook_retry_max,
        timeout=settings.webhook_timeout,
        poll_interval=settings.webhook_poll_interval,
        retention=settings.result_ttl,
    )
    processor = Processor(
        redis=redis,
        store=TaskStore(
            redis,
            settings.result_ttl,
            blobs,
            input_retention=settings.input_retention,
            replication=Replication.from_settings(settings),
        ),
        queue=queue,
        registry=registry,
        stats=stats,
        client=MinerClient(miners_http, hotkey, settings.miner_max_response_bytes),
        references=ReferenceClient(
            reference_http, settings.lb_url, settings.summarizer_url, settings.reference_timeout
        ),
        webhooks=webhooks,
        metrics=metrics,
        settings=settings,
        hub=hub,
    )
    # A task whose write a full Redis refuses waits, entry held, instead of failing.
    storage_wait = WaitWhileFull(processor.handle, metrics)
    pool = WorkPool(
        settings.max_concurrent_tasks,
        queue,
        storage_wait,
        metrics,
        heartbeat=settings.heartbeat_interval,
    )
    app[COMPONENTS] = Components(
        settings=settings,
        redis=redis,
        metrics=metrics,
        registry=registry,
        stats=stats,
        queue=queue,
        pool=pool,
        processor=processor,
        storage_wait=storage_wait,
        consumer=Consumer(queue, pool, settings.block_timeout),
        reclaimer=Reclaimer(
            queue,
            pool,
            defer_while_full(processor.abandon, metrics),
            metrics,
            idle=settings.reclaim_idle,
            interval=settings.reclaim_interval,
            max_deliveries=settings.max_deliveries,
        ),
        weights=WeightSetter(
            redis,
            registry,
            stats,
            metrics,
            owner=app[CONSUMER_NAME],
            interval=settings.weights_interval,
            netuid=settings.bt_netuid,
            chain=app[CHAIN] if settings.chain_mode else None,
            wallet=wallet,
        ),
        webhooks=webhooks,
        sessions=[miners_http, reference_http, hooks_http],
        blobs=blobs,
        janitor=BlobJanitor(
            redis,
            blobs,
            interval=settings.blob_sweep_interval,
            orphan_age=settings.blob_orphan_age,
            owner=app[CONSUMER_NAME],
        ),
        hub=hub,
    )
    try:
        await registry.sync()
    except MinerSourceError as exc:
        log.warning("miner_sync_failed", error=str(exc))
    yield
    for session in app[COMPONENTS].sessions:
        await session.close()
    await blobs.close()
    await redis.aclose()


async def _loops(app: web.Application) -> AsyncIterator[None]:
    c, settings = app[COMPONENTS], app[SETTINGS]
    stop = asyncio.Event()
    loops = {
        "consumer": c.consumer.run(stop),
        "reclaim": c.reclaimer.run(stop),
        "miners": c.registry.run(stop),
        "weights": c.weights.run(stop),
        "webhooks": c.webhooks.run(stop),
        "blobs": c.janitor.run(stop),
        "events": c.hub.run(stop),
        "netstats": netstats.run(
            c.redis,
            c.registry,
            c.stats,
            c.processor.policy,
            c.metrics,
            settings.netstats_interval,
            stop,
        ),
        "operations": operations.run(c, app[CONSUMER_NAME], stop),
    }
    liveness = app[LIVENESS]
    for name, coro in loops.items():
        task = asyncio.create_task(coro, name=f"validator-{name}")
        task.add_done_callback(_report_crash)
        liveness.loops[name] = task
    log.info(
        "validator_started",
        consumer=app[CONSUMER_NAME],
        mode="static" if settings.miners_file else "chain",
        miners=len(c.registry.miners),
    )
    yield
    stop.set()
    # Hand the work in flight back first, so no task waits for this replica's loops to end;
    # then once more for an entry the consumer or the reclaimer took in the meantime.
    await c.pool.drain(settings.shutdown_grace)
    await asyncio.wait(list(liveness.loops.values()), timeout=settings.block_timeout + 1.0)
    await c.pool.drain(0)
    pending = [t for t in liveness.loops.values() if not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    log.info("validator_stopped", consumer=app[CONSUMER_NAME])


def _report_crash(task: asyncio.Task[None]) -> None:
    """Log a background loop that ended with an error (/health then answers 503)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("loop_crashed", loop=task.get_name(), error=repr(task.exception()))
