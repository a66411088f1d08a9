"""Forwarding: failover before the body is sent, 502/503/504, client disconnects, endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from devnet.redis_server import free_port
from services.lb.state import POOL
from tests.lb.conftest import eventually, leave_mid_upload


async def _error(response, status: int, code: str) -> dict:
    assert response.status == status
    body = await response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


async def test_connection_refused_fails_over_and_takes_the_instance_out(make_instance, make_lb):
    closed = f"http://127.0.0.1:{free_port()}"
    # The closed port reports nothing, so it looks idle and is tried first.
    busy = await make_instance(active_jobs=5)
    client = await make_lb(closed, busy, UNHEALTHY_THRESHOLD=3)
    dead = client.app[POOL].instances[0]
    assert (dead.is_healthy, dead.consecutive_failures) == (True, 1)

    response = await client.post("/v1/audio/transcriptions", data=b"payload")
    assert response.status == 200
    assert [r.body for r in busy.received] == [b"payload"]
    # Passive failure: out of rotation at once, without waiting for the next poll.
    assert dead.consecutive_failures == 2 and not dead.is_healthy

    assert (await client.post("/v1/audio/transcriptions", data=b"again")).status == 200
    assert (await client.post("/v1/audio/transcriptions", data=b"third")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert f'lb_requests_total{{instance="{closed}",outcome="connect_failed"}} 1.0' in metrics
    assert f'lb_requests_total{{instance="{busy.url}",outcome="ok"}} 3.0' in metrics


@pytest.fixture
def unresponsive_url() -> Iterator[str]:
    """A listening port whose accept queue is full: connections to it time out."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket())
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}"


async def test_connect_timeout_fails_over_and_counts_as_a_failure(
    unresponsive_url, make_instance, make_lb
):
    busy = await make_instance(active_jobs=5)
    client = await make_lb(unresponsive_url, busy, CONNECT_TIMEOUT=0.2, HEALTH_CHECK_TIMEOUT=0.2)
    stuck = client.app[POOL].instances[0]
    assert "timeout" in stuck.error_message and stuck.consecutive_failures == 1
    response = await client.post("/v1/audio/transcriptions", data=b"payload")
    assert response.status == 200
    assert [r.body for r in busy.received] == [b"payload"]
    assert stuck.consecutive_failures == 2 and not stuck.is_healthy


async def test_no_healthy_instance_is_503_with_retry_after(make_instance, make_lb):
    down = await make_instance(health_status=500)
    client = await make_lb(down, UNHEALTHY_THRESHOLD=1, HEALTH_CHECK_INTERVAL=12.5)
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    await _error(response, 503, "no_healthy_instance")
    assert response.headers["Retry-After"] == str(math.ceil(12.5))
    assert down.received == []


async def test_every_instance_refusing_is_503(make_lb):
    client = await make_lb(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    await _error(response, 503, "instances_unreachable")
    assert int(response.headers["Retry-After"]) >= 1
    assert all(i.consecutive_failures == 2 for i in client.app[POOL].instances)


async def test_instance_dying_mid_upload_is_502(make_instance, make_lb):
    async def die(request: web.Request, received) -> web.StreamResponse:
        await request.content.readexactly(1024)
        request.transport.close()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    dying = await make_instance(read_body=False, reply=die)
    spare = await make_instance(active_jobs=9)
    client = await make_lb(dying, spare)
    response = await client.post("/v1/audio/transcriptions", data=b"\0" * (8 << 20))
    await _error(response, 502, "upstream_error")
    # The upload had started: no second attempt elsewhere.
    assert spare.received == []


async def test_instance_closing_without_an_answer_is_502(make_instance, make_lb):
    async def hang_up(request: web.Request, received) -> web.StreamResponse:
        request.transport.close()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client = await make_lb(await make_instance(reply=hang_up))
    await _error(await client.post("/v1/audio/transcriptions", data=b"x"), 502, "upstream_error")


async def test_instance_dying_mid_answer_cuts_the_client_connection(make_instance, make_lb):
    async def half_answer(request: web.Request, received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 100)
        request.transport.close()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    instance = await make_instance(reply=half_answer)
    client = await make_lb(instance)
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    assert response.status == 200
    # Too late for a 502: the client must see a broken answer, not a short complete one.
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    metrics = await (await client.get("/metrics")).text()
    assert f'lb_requests_total{{instance="{instance.url}",outcome="upstream_error"}} 1.0' in metrics


async def test_request_timeout_is_504_and_closes_the_upstream_request(make_instance, make_lb):
    slow = await make_instance()
    slow.release.clear()
    client = await make_lb(slow, REQUEST_TIMEOUT=0.3)
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    await _error(response, 504, "upstream_timeout")
    await eventually(slow.aborted.is_set)


async def test_client_disconnect_mid_upload_aborts_the_upstream_request(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    await leave_mid_upload(
        client.port, "/v1/audio/transcriptions", instance, 50_000_000, b"\1" * 200_000
    )
    await eventually(instance.aborted.is_set)
    await eventually(lambda: client.app[POOL].instances[0].in_flight == 0)


async def test_client_disconnect_mid_response_aborts_the_upstream_request(make_instance, make_lb):
    first_chunk_sent = asyncio.Event()

    async def stream_forever(request: web.Request, received) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial transcript")
        first_chunk_sent.set()
        await asyncio.Event().wait()
        return response

    instance = await make_instance(reply=stream_forever)
    client = await make_lb(instance)
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    assert response.status == 200
    assert await response.content.readany() == b"partial transcript"
    response.close()
    await eventually(instance.aborted.is_set)
    await eventually(lambda: client.app[POOL].instances[0].in_flight == 0)


async def test_legacy_alias_forwards_to_the_transcription_endpoint(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    response = await client.post("/transcribe?language=de", data=b"legacy")
    assert response.status == 200
    (received,) = instance.received
    assert (received.path, received.query, received.body) == (
        "/v1/audio/transcriptions",
        "language=de",
        b"legacy",
    )


async def test_index_and_health_have_the_seed_shape(make_instance, make_lb):
    client = await make_lb(await make_instance(active_jobs=3), await make_instance())
    index = await (await client.get("/")).json()
    assert index["service"] == "WhisperX Load Balancer" and index["instances"] == 2
    assert index["endpoints"] == {"health": "/health", "transcription": "/v1/audio/transcriptions"}
    assert isinstance(index["version"], str)
    health = await (await client.get("/health")).json()
    assert set(health) == {"total_instances", "healthy_instances", "total_active_jobs", "instances"}
    assert set(health["instances"][0]) == {
        "url",
        "is_healthy",
        "active_jobs",
        "last_check",
        "consecutive_failures",
        "error_message",
    }


async def test_metrics_cover_requests_health_in_flight_and_latency(make_instance, make_lb):
    instance = await make_instance(active_jobs=2)
    client = await make_lb(instance)
    assert (await client.post("/v1/audio/transcriptions", data=b"x")).status == 200
    response = await client.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    label = f'{{instance="{instance.url}"}}'
    for line in (
        f'lb_requests_total{{instance="{instance.url}",outcome="ok"}} 1.0',
        f"lb_instance_healthy{label} 1.0",
        f"lb_instance_active_jobs{label} 2.0",
        f"lb_in_flight_requests{label} 0.0",
        f"lb_instance_load{label} 2.0",
        f"lb_upstream_latency_seconds_count{label} 1.0",
        f'lb_health_checks_total{{instance="{instance.url}",result="ok"}} 1.0',
    ):
        assert line in text, line
