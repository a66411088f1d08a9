"""Blob stores for tests: both backends behind one fixture, each test on an empty store.

The S3 backend runs against moto's standalone server (``ThreadedMotoServer``), a real
S3-compatible HTTP server on a loopback port, never moto's in-process mocks. Tests change
BLOB_STORE from its default (var/blobs, shared by every test of a run) to a fresh directory
or bucket, so that "nothing was left in the store" can be checked.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from moto.server import ThreadedMotoServer
from redis.asyncio import Redis

from devnet.redis_server import free_port
from shared import keys
from shared.blobs import INCOMING, BlobSettings, BlobStore, open_blob_store
from shared.ids import uuid4_hex
from shared.settings import load_settings

BACKENDS = ("file", "s3")
#: moto accepts any credentials; these are the ones its documentation uses.
S3_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


async def blob_names(store: BlobStore) -> list[str]:
    """Every blob in ``store``, uploads in progress included."""
    found = []
    for prefix in (keys.INPUT_BLOBS, keys.OUTPUT_BLOBS, INCOMING):
        found += [info.name async for info in store.list(prefix)]
    return sorted(found)


async def largest_redis_value(redis: Redis) -> tuple[int, str]:
    """The longest single value Redis holds, in bytes, and where: a string, a hash field's
    value, a list, set or sorted-set member, or a stream entry's field value (the 64 KiB
    rule is per value: an index may well hold more than that in all)."""
    largest, where = 0, ""
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        sizes: list[tuple[bytes, int]] = []
        if kind == "string":
            sizes = [(b"", await redis.strlen(key))]
        elif kind == "hash":
            sizes = [(f, len(v)) for f, v in (await redis.hgetall(key)).items()]
        elif kind == "list":
            sizes = [(b"", len(v)) for v in await redis.lrange(key, 0, -1)]
        elif kind == "set":
            sizes = [(b"", len(v)) for v in await redis.smembers(key)]
        elif kind == "zset":
            sizes = [(b"", len(v)) for v in await redis.zrange(key, 0, -1)]
        elif kind == "stream":
            rows = await redis.xrange(key)
            sizes = [(f, len(v)) for _, entry in rows for f, v in entry.items()]
        for field, size in sizes:
            if size > largest:
                largest = size
                where = f"{key.decode(errors='replace')} {field.decode(errors='replace')}"
    return largest, where.strip()


class MotoServer:
    """moto's S3 server on one loopback port; stop and start it again to take it away."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self  # answering, if only with an error: it is up
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Backend:
    """One blob store for a test: the environment that selects it, and a client of it."""

    name: str
    env: dict[str, str]
    store: BlobStore

    def settings(self) -> BlobSettings:
        return load_settings(BlobSettings, self.env)

    async def names(self) -> list[str]:
        """Every blob in the store, uploads in progress included."""
        return await blob_names(self.store)


async def make_backend(name: str, tmp_path: Path, moto: MotoServer | None = None) -> Backend:
    """An empty store of backend ``name`` (a directory under ``tmp_path``, or a new bucket
    on ``moto``), opened and started."""
    if name == "file":
        env = {"BLOB_STORE": str(tmp_path / "blobs")}
    else:
        assert moto is not None
        env = {
            "BLOB_STORE": f"s3://test-{uuid4_hex()[:16]}/blobs",
            "S3_ENDPOINT_URL": moto.url,
            "AWS_REGION": "us-east-1",
            **S3_TEST_CREDENTIALS,
        }
    store = open_blob_store(load_settings(BlobSettings, env))
    if name == "s3":
        client = await store.client()  # type: ignore[attr-defined]
        await client.create_bucket(Bucket=store.bucket)  # type: ignore[attr-defined]
    await store.start()
    return Backend(name, env, store)
