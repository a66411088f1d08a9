"""The zero-copy upload relay (services/lb/splice.py): a large body with a Content-Length
goes socket -> pipe -> socket, byte for byte; a client leaving mid-body still cuts the
instance's request off; small and chunked bodies take the portable path."""

from __future__ import annotations

import os

import pytest
from aiohttp import web

from services.lb import splice
from services.lb.metrics import CLIENT_DISCONNECTED
from services.lb.state import METRICS, POOL

from .conftest import eventually, leave_mid_upload

pytestmark = pytest.mark.skipif(
    not splice.AVAILABLE, reason="os.splice is Linux-only: the portable path is used there"
)

UPLOAD = "/v1/audio/transcriptions"
MIB = 1 << 20


def _bytes(client, path: str) -> float:
    return client.app[METRICS].upload_bytes.labels(path)._value.get()


async def test_a_large_body_is_spliced_byte_for_byte(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    body = os.urandom(9 * MIB + 12345)  # not a multiple of the pipe's size
    response = await client.post(
        UPLOAD, data=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status == 200
    # The client connection is closed after the answer: its parser never saw the body.
    assert response.headers.get("Connection", "").lower() == "close"
    (received,) = instance.received
    assert received.headers["Content-Length"] == str(len(body))
    assert received.body == body
    spliced, copied = _bytes(client, "splice"), _bytes(client, "copy")
    assert spliced + copied == len(body) and spliced > 0


async def test_two_spliced_uploads_in_a_row_each_arrive_whole(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    bodies = [os.urandom(2 * MIB + n) for n in (1, 7)]
    for body in bodies:
        response = await client.post(UPLOAD, data=body)
        assert response.status == 200
    assert [r.body for r in instance.received] == bodies


async def test_small_and_chunked_bodies_take_the_portable_path(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    small = os.urandom(64 * 1024)

    async def chunks():
        for _ in range(3):
            yield os.urandom(MIB)

    assert (await client.post(UPLOAD, data=small)).status == 200
    assert (await client.post(UPLOAD, data=chunks())).status == 200
    assert instance.received[0].body == small and len(instance.received[1].body) == 3 * MIB
    assert _bytes(client, "splice") == 0


async def test_a_client_leaving_mid_splice_cuts_the_instance_off(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    await leave_mid_upload(client.port, UPLOAD, instance, 64 * MIB, b"\2" * (3 * MIB))
    await eventually(instance.aborted.is_set)
    await eventually(lambda: client.app[POOL].instances[0].in_flight == 0)
    gone = client.app[METRICS].requests.labels(instance.url, CLIENT_DISCONNECTED)
    await eventually(lambda: gone._value.get() == 1)


async def test_an_instance_failing_mid_splice_is_a_502_and_the_connection_closes(
    make_instance, make_lb
):
    async def hang_up(request, received):
        await request.content.readexactly(MIB)
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    instance = await make_instance(reply=hang_up, read_body=False)
    client = await make_lb(instance)
    response = await client.post(UPLOAD, data=os.urandom(32 * MIB))
    assert response.status == 502
    assert (await response.json())["error"]["code"] == "upstream_error"
    assert response.headers.get("Connection", "").lower() == "close"
