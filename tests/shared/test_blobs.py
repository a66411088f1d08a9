"""The blob store contract, run against both backends (a directory, and S3 through moto's
standalone server on loopback)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.blobs import (
    BlobNotFound,
    BlobSettings,
    BlobUnavailable,
    open_blob_store,
    parse_location,
)
from shared.settings import SettingsError, load_settings
from tests.blobstores import S3_TEST_CREDENTIALS, MotoServer, make_backend


async def test_put_read_open_exists_delete(backend):
    store = backend.store
    await store.put("outputs/ab/x.1", b"hello")
    assert await store.read("outputs/ab/x.1") == b"hello"
    blob = await store.open("outputs/ab/x.1")
    assert blob.size == 5
    assert b"".join([c async for c in blob.chunks(2)]) == b"hello"
    assert await store.exists("outputs/ab/x.1")
    await store.delete("outputs/ab/x.1")
    assert not await store.exists("outputs/ab/x.1")
    await store.delete("outputs/ab/x.1")  # deleting what is gone is no error
    with pytest.raises(BlobNotFound):
        await store.open("outputs/ab/x.1")


async def test_an_upload_is_invisible_until_committed(backend):
    store = backend.store
    upload = store.upload("inputs/ab/task")
    for _ in range(5):
        await upload.write(os.urandom(1000) + b"\0" * 300_000)
    assert upload.size == 5 * 301_000
    assert not await store.exists("inputs/ab/task")
    await upload.commit()
    assert (await store.open("inputs/ab/task")).size == 5 * 301_000
    assert await backend.names() == ["inputs/ab/task"]


async def test_an_aborted_upload_leaves_nothing(backend):
    upload = backend.store.upload("inputs/ab/task")
    await upload.write(b"x" * 100_000)
    await upload.abort()
    await upload.abort()  # idempotent
    assert await backend.names() == []


async def test_listing_by_prefix(backend):
    store = backend.store
    for name in ("inputs/aa/1", "inputs/bb/2", "outputs/aa/3.x"):
        await store.put(name, name.encode())
    listed = {info.name: info.size async for info in store.list("inputs/")}
    assert listed == {"inputs/aa/1": 11, "inputs/bb/2": 11}


async def test_file_store_whose_root_disappears_is_unavailable(tmp_path: Path):
    backend = await make_backend("file", tmp_path)
    await backend.store.ping()
    root = tmp_path / "blobs"
    root.rename(tmp_path / "gone")
    with pytest.raises(BlobUnavailable):
        await backend.store.ping()
    with pytest.raises(BlobUnavailable):
        await backend.store.put("inputs/aa/1", b"x")
    with pytest.raises(BlobUnavailable):
        await backend.store.open("inputs/aa/1")
    (tmp_path / "gone").rename(root)
    await backend.store.put("inputs/aa/1", b"x")


async def test_s3_store_away_and_back(tmp_path: Path):
    server = MotoServer().start()
    backend = await make_backend("s3", tmp_path, server)
    try:
        await backend.store.put("inputs/aa/1", b"x")
        server.stop()
        with pytest.raises(BlobUnavailable):
            await backend.store.ping()
        with pytest.raises(BlobUnavailable):
            await backend.store.read("inputs/aa/1")
        server.start()  # same port; moto keeps its buckets in this process, like S3 would
        assert await backend.store.read("inputs/aa/1") == b"x"
    finally:
        server.stop()
        await backend.store.close()


async def test_s3_store_without_its_bucket_is_unavailable(moto):
    env = {"BLOB_STORE": "s3://no-such-bucket/x", "S3_ENDPOINT_URL": moto.url}
    store = open_blob_store(load_settings(BlobSettings, {**env, **S3_TEST_CREDENTIALS}))
    try:
        with pytest.raises(BlobUnavailable, match="bucket"):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("value", "backend", "where"),
    [
        ("var/blobs", "file", None),
        ("file:///srv/blobs", "file", "/srv/blobs"),
        ("s3://audio-blobs", "s3", ("audio-blobs", "")),
        ("s3://audio-blobs/prod/eu/", "s3", ("audio-blobs", "prod/eu/")),
    ],
)
def test_blob_store_locations(value, backend, where):
    location = parse_location(value)
    assert location.backend == backend
    if backend == "file" and where:
        assert str(location.path) == where
    if backend == "file" and where is None:
        assert location.path == (Path.cwd() / value).resolve()
    if backend == "s3":
        assert (location.bucket, location.prefix) == where


@pytest.mark.parametrize(
    "value", ["s3://A_bad_bucket/x", "file://host/path", "gs://bucket", "s3://b?x=1"]
)
def test_bad_blob_store_values_are_refused_at_start(value):
    with pytest.raises(SettingsError, match="BLOB_STORE"):
        load_settings(BlobSettings, {"BLOB_STORE": value})
