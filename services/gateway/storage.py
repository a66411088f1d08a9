"""The blob store from the gateway's side: its app key, its lifetime, and the 503 that a
client gets while it is away (``storage_unavailable``, with Retry-After).

Kept apart from :mod:`services.gateway.errors` (Redis failures): the two stores fail
independently, and each has its own code.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import structlog
from aiohttp import web

from services.gateway.errors import RETRY_AFTER, ApiError
from services.gateway.settings import GatewaySettings
from shared.blobs import BlobStore, BlobUnavailable, open_blob_store

log = structlog.get_logger("gateway.storage")

BLOBS = web.AppKey("blobs", BlobStore)

CODE = "storage_unavailable"
MESSAGE = "the blob store is unreachable, retry later"


def unavailable(during: str, exc: BlobUnavailable) -> ApiError:
    """The 503 for a request that needed the blob store while it was away."""
    log.warning("blob_store_unavailable", during=during, error=str(exc))
    return ApiError(503, CODE, MESSAGE, headers={"Retry-After": RETRY_AFTER})


@contextlib.contextmanager
def storage_errors(during: str) -> Iterator[None]:
    """Turn :class:`BlobUnavailable` into the ``storage_unavailable`` 503."""
    try:
        yield
    except BlobUnavailable as exc:
        raise unavailable(during, exc) from None


def blob_store_ctx(
    settings: GatewaySettings,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry opening the blob store for the app's lifetime (unreachable at
    start is logged; requests then get 503 until it answers)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[BLOBS] = open_blob_store(settings)
        await store.start()
        log.info("blob_store_opened", backend=store.backend, location=store.location)
        yield
        await store.close()

    return ctx
