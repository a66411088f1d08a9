"""The S3 backend (AWS S3 and compatibles: MinIO, Ceph RGW, Cloudflare R2, GCS interop),
through aiobotocore: botocore's maintained request signing, retries and error parsing on
aiohttp, so S3 calls share the services' event loop instead of a thread per request.

An upload is spooled to a local temporary file while it arrives (the file is unlinked at
once, so a crash leaves nothing on disk), then sent with one PUT that streams the file:
gateway memory stays flat whatever the upload size, which a multipart upload (parts of
at least 5 MiB held in memory per upload) could not promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import IO, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from shared.blobs.base import CHUNK_BYTES, BlobError, BlobInfo, BlobNotFound, BlobUnavailable
from shared.logging import get_logger

log = get_logger("blobs.s3")

_MISSING = {"NoSuchKey", "NotFound", "404"}


def _classify(exc: BaseException, name: str) -> BlobError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING:
            return BlobNotFound(name)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return BlobUnavailable(f"s3 answered {status} {code}".strip())
    return BlobUnavailable(f"{type(exc).__name__}: {exc}"[:300])


@contextlib.contextmanager
def _errors(name: str) -> Iterator[None]:
    """Turn botocore, aiohttp and socket failures into the store's two errors."""
    try:
        yield
    except (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _classify(exc, name) from None


async def _close_body(body: Any) -> None:
    result = body.close()
    if inspect.isawaitable(result):
        await result


class S3Blob:
    """A GetObject response being streamed."""

    def __init__(self, body: Any, size: int, name: str) -> None:
        self._body = body
        self._name = name
        self.size = size

    async def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            with _errors(self._name):
                async for chunk in self._body.iter_chunks(chunk_bytes):
                    yield chunk
        finally:
            await self.close()

    async def close(self) -> None:
        await _close_body(self._body)


class S3Upload:
    """Chunks spooled to an anonymous temporary file, sent as one streamed PUT on commit."""

    def __init__(self, store: S3BlobStore, name: str) -> None:
        self._store = store
        self._name = name
        self._spool: IO[bytes] | None = None
        self._done = False
        self.size = 0

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        try:
            if self._spool is None:
                self._spool = await asyncio.to_thread(
                    tempfile.TemporaryFile, dir=self._store.spool_dir
                )
            await asyncio.to_thread(self._spool.write, chunk)
        except OSError as exc:
            await self.abort()
            raise BlobUnavailable(f"spool file: {exc.strerror or exc}") from None
        self.size += len(chunk)

    async def commit(self) -> None:
        try:
            if self._spool is None:
                await self._store.put(self._name, b"")
            else:
                await asyncio.to_thread(self._spool.seek, 0)
                await self._store.put_file(self._name, self._spool, self.size)
        finally:
            await self.abort()

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._spool is not None:
            self._spool.close()


class S3BlobStore:
    """Blobs as objects ``<prefix><name>`` in one bucket."""

    backend = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        timeout: float,
        spool_dir: str | None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.location = f"s3://{bucket}/{prefix}"
        self.spool_dir = spool_dir
        self._options: dict[str, Any] = {
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            # None: botocore's own chain (environment, web identity, instance profile).
            "aws_access_key_id": access_key_id or None,
            "aws_secret_access_key": secret_access_key or None,
            "config": AioConfig(
                connect_timeout=min(timeout, 5.0),
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                # Endpoints of S3 compatibles seldom resolve bucket subdomains.
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                # Checksums only where S3 requires them: several compatibles refuse the
                # newer default trailing checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                max_pool_connections=64,
            ),
        }
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    def key(self, name: str) -> str:
        return self.prefix + name

    async def client(self) -> Any:
        """The aiobotocore client, created on first use (creating it sends nothing)."""
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    stack = AsyncExitStack()
                    self._client = await stack.enter_async_context(
                        get_session().create_client("s3", **self._options)
                    )
                    self._stack = stack
        return self._client

    async def start(self) -> None:
        await self.client()
        try:
            await self.ping()
        except BlobUnavailable as exc:
            log.warning("blob_store_unavailable_at_start", location=self.location, error=str(exc))

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    async def ping(self) -> None:
        client = await self.client()
        try:
            with _errors(""):
                await client.head_bucket(Bucket=self.bucket)
        except BlobNotFound:
            raise BlobUnavailable(f"bucket {self.bucket} does not exist") from None

    async def put(self, name: str, data: bytes | bytearray) -> None:
        client = await self.client()
        with _errors(name):
            await client.put_object(Bucket=self.bucket, Key=self.key(name), Body=bytes(data))

    async def put_file(self, name: str, handle: IO[bytes], size: int) -> None:
        """PUT from an open file positioned at its start; streamed, not read into memory."""
        client = await self.client()
        with _errors(name):
            await client.put_object(
                Bucket=self.bucket, Key=self.key(name), Body=handle, ContentLength=size
            )

    def upload(self, name: str) -> S3Upload:
        return S3Upload(self, name)

    async def open(self, name: str) -> S3Blob:
        client = await self.client()
        with _errors(name):
            response = await client.get_object(Bucket=self.bucket, Key=self.key(name))
        return S3Blob(response["Body"], int(response["ContentLength"]), name)

    async def read(self, name: str) -> bytes:
        blob = await self.open(name)
        return b"".join([chunk async for chunk in blob.chunks()])

    async def exists(self, name: str) -> bool:
        client = await self.client()
        try:
            with _errors(name):
                await client.head_object(Bucket=self.bucket, Key=self.key(name))
        except BlobNotFound:
            return False
        return True

    async def delete(self, name: str) -> None:
        client = await self.client()
        with _errors(name):
            await client.delete_object(Bucket=self.bucket, Key=self.key(name))

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        client = await self.client()
        paginator = client.get_paginator("list_objects_v2")
        skip = len(self.prefix)
        with _errors(prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key(prefix)):
                for obj in page.get("Contents", []):
                    yield BlobInfo(
                        obj["Key"][skip:], int(obj["Size"]), obj["LastModified"].timestamp()
                    )
