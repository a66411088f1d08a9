"""/v1 on a gateway without a validator: validation before anything is stored, OpenAI's
error shape, the 504 past SYNC_WAIT and the 502 of a failed task, with the OpenAI SDK."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
from aiohttp import FormData
from redis.asyncio import Redis

from devnet import audio
from devnet.redis_server import free_port
from services.gateway.apikeys import ApiKeys
from services.gateway.state import STORE
from shared import keys
from shared.store import TaskStore
from shared.tasks import Status

from .conftest import assert_nothing_stored, gateway_process

#: The gateway's SYNC_WAIT in the tests that expect a 504: no validator runs here, so a
#: call would otherwise wait the shipped 120 s for a task nobody works on.
SHORT_WAIT = 0.5


def form(data: bytes, **fields: str | list[str]) -> FormData:
    body = FormData()
    body.add_field("file", data, filename="speech.wav", content_type="audio/wav")
    for name, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            body.add_field(name, one)
    return body


async def _tasks(redis: Redis) -> list[bytes]:
    """The task hashes (not their input or output keys)."""
    return [k for k in await redis.keys(keys.task("*")) if k.count(b":") == 2]


async def _first_task_id(redis: Redis) -> str:
    """The id of the first task stored, once the gateway has stored it (20 s at most)."""
    for _ in range(400):
        if found := await _tasks(redis):
            return found[0].decode().rsplit(":", 1)[1]
        await asyncio.sleep(0.05)
    raise AssertionError("no task was stored")


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "whisper-2"}, "model_not_found", "model"),
        (
            {"model": "whisper-1", "response_format": "docx"},
            "unsupported_response_format",
            "response_format",
        ),
        ({"model": "whisper-1", "language": "xx"}, "invalid_language", "language"),
        ({"model": "whisper-1", "stream": "true"}, "stream_unsupported", "stream"),
        ({"model": "whisper-1", "temperature": "2"}, "invalid_field", "temperature"),
        ({}, "missing_field", "model"),
    ],
)
async def test_transcription_refusals_store_nothing(client, redis, wav, fields, code, param):
    resp = await client.post("/v1/audio/transcriptions", data=form(wav, **fields))
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["code"] == code and body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"
    await assert_nothing_stored(redis, client)


async def test_not_audio_and_bad_priority_store_nothing(client, redis, wav):
    resp = await client.post(
        "/v1/audio/transcriptions", data=form(b"%PDF-1.7 not audio", model="whisper-1")
    )
    assert (await resp.json())["error"]["code"] == "not_audio"
    resp = await client.post(
        "/v1/audio/transcriptions",
        data=form(wav, model="whisper-1"),
        headers={"X-Priority": "asap"},
    )
    body = await resp.json()
    assert resp.status == 400 and body["error"]["param"] == "X-Priority"
    resp = await client.post("/v1/audio/speech", json={"model": "tts-1", "input": "  "})
    assert (await resp.json())["error"]["code"] == "blank_text"
    resp = await client.post("/v1/audio/speech", data=b"{", headers={"Content-Type": "text/x"})
    assert resp.status == 415
    await assert_nothing_stored(redis, client)


async def test_unknown_routes_answer_in_openai_shape(client):
    resp = await client.get("/v1/audio/translations")
    body = await resp.json()
    assert resp.status == 404
    assert body["error"]["type"] == "not_found_error" and body["error"]["code"] == "not_found"
    resp = await client.get("/v1/audio/speech")
    assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_ignored_fields_are_accepted_and_x_priority_queues(make_gateway, redis, wav):
    client = await make_gateway(sync_wait=SHORT_WAIT)
    fields = {
        "model": "whisper-1",
        "prompt": "a prompt we cannot honour",
        "temperature": "0.2",
        "timestamp_granularities[]": ["word", "segment"],
        "stream": "false",
        "chunking_strategy": "auto",  # unknown to this gateway: ignored too
    }
    resp = await client.post(
        "/v1/audio/transcriptions", data=form(wav, **fields), headers={"X-Priority": "high"}
    )
    assert resp.status == 504, await resp.text()
    task = await TaskStore(redis, 3600).get((await resp.json())["error"]["task_id"])
    assert task is not None and task.priority.value == "high" and task.status is Status.PENDING


async def _key(redis: Redis) -> str:
    return (await ApiKeys(redis).create("sdk"))[1]


async def test_504_names_the_task_and_the_sdk_does_not_retry(make_gateway, redis):
    client = await make_gateway(sync_wait=SHORT_WAIT)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=await _key(redis))
    # The SDK's default retries stay on: x-should-retry: false keeps it from queuing more.
    with pytest.raises(openai.APIStatusError) as timeout:
        await sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    await sdk.close()
    response = timeout.value.response
    task_id = timeout.value.body["task_id"]
    assert response.status_code == 504 and timeout.value.body["code"] == "sync_wait_exceeded"
    assert response.headers["location"] == f"/api/v1/tasks/{task_id}"
    assert await _tasks(redis) == [keys.task(task_id).encode()]
    polled = await client.get(
        response.headers["location"], headers={"Authorization": sdk.auth_headers["Authorization"]}
    )
    assert (await polled.json())["status"] == "pending"


async def test_a_failed_task_is_a_502_with_its_reason(client, redis):
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=await _key(redis))
    reason = "no usable answer from miners after 3 attempts (timeout x3)"

    async def fail_it() -> None:
        # The validator's part, through the same store transition it makes.
        task_id = await _first_task_id(redis)
        store = TaskStore(redis, 3600)
        assert await store.transition(
            task_id, Status.FAILED, expect=[Status.PENDING], fields={"error": reason}
        )

    failer = asyncio.create_task(fail_it())
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    await failer
    await sdk.close()
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "task_failed" and reason in failed.value.body["message"]


async def test_a_task_cancelled_during_the_wait_is_a_409(client, redis):
    key = await _key(redis)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key)

    async def cancel_it() -> int:
        # The owner cancels through the native API while the /v1 call waits.
        task_id = await _first_task_id(redis)
        resp = await client.delete(
            f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        )
        return resp.status

    canceller = asyncio.create_task(cancel_it())
    with pytest.raises(openai.APIStatusError) as refused:
        await sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello")
    assert await canceller == 200
    await sdk.close()
    assert refused.value.status_code == 409
    assert refused.value.body["code"] == "task_cancelled"


async def test_without_miner_segments_one_segment_spans_the_audio(client, redis, wav):
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=await _key(redis))

    async def complete_it() -> None:
        # The validator's part: an answer without segments, stored the way it stores one.
        task_id = await _first_task_id(redis)
        assert await TaskStore(redis, 3600).transition(
            task_id,
            Status.COMPLETED,
            expect=[Status.PENDING],
            fields={"result": json.dumps({"model_used": "m", "miner_uid": 1})},
            output=b"hello world",
        )

    completer = asyncio.create_task(complete_it())
    verbose = await sdk.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav), response_format="verbose_json"
    )
    await completer
    await sdk.close()
    seconds = audio.duration(wav)
    assert verbose.text == "hello world" and verbose.duration == pytest.approx(seconds)
    (segment,) = verbose.segments
    assert (segment.start, segment.text) == (0, "hello world")
    assert segment.end == pytest.approx(seconds)


async def test_segments_too_long_for_redis_come_from_the_blob_store(client, redis, wav):
    """A long transcript's segments (here 2,000, about 110 KB of JSON) are kept in the
    blob store, not in the task hash; verbose_json still shows every one of them."""
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=await _key(redis))
    segments = [{"start": i, "end": i + 1, "text": f"segment number {i} " * 2} for i in range(2000)]
    store = client.app[STORE]

    async def complete_it() -> None:
        # The validator's part, as it stores a result with long segments.
        task_id = await _first_task_id(redis)
        result = {"model_used": "m", "miner_uid": 1, "segments": segments}
        fields, blob = await store.data.place_result(task_id, result)
        assert blob is not None and fields["segments_blob"] == blob
        assert len(fields["result"]) < 1000
        assert await store.transition(
            task_id, Status.COMPLETED, expect=[Status.PENDING], fields=fields, output=b"hi"
        )

    completer = asyncio.create_task(complete_it())
    verbose = await sdk.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav), response_format="verbose_json"
    )
    await completer
    await sdk.close()
    shown = [{"start": s.start, "end": s.end, "text": s.text} for s in verbose.segments]
    assert shown == segments


async def _leave_during_wait(host: str, port: int, redis: Redis) -> str:
    """Send a speech call, wait until its task is stored, hang up; the task's id."""
    _, writer = await asyncio.open_connection(host, port)
    body = b'{"model": "tts-1", "input": "hello", "voice": "alloy"}'
    writer.write(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    task_id = await _first_task_id(redis)
    writer.close()
    await writer.wait_closed()
    return task_id


LEFT = 'gateway_http_requests_total{method="POST",route="/v1/audio/speech",status="499"} 1.0'


async def _metrics_show_it_left(get_metrics) -> bool:
    for _ in range(400):
        if LEFT in await get_metrics():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_client_that_leaves_ends_its_wait_and_its_task_stays(redis_server, redis):
    """The gateway as it ships (a process, no handler cancellation, SYNC_WAIT 120 s): the
    wait ends with the connection, not with the timer, and the task stays queued."""
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "HOST": "127.0.0.1", "PORT": str(port)}
    env["ENVIRONMENT"] = "test"
    with gateway_process(env) as (_, status):
        assert status == 200
        task_id = await _leave_during_wait("127.0.0.1", port, redis)
        async with aiohttp.ClientSession() as session:

            async def get_metrics() -> str:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    return await resp.text()

            assert await _metrics_show_it_left(get_metrics)
    task = await TaskStore(redis, 3600).get(task_id)
    assert task is not None and task.status is Status.PENDING


async def test_a_cancelled_handler_keeps_its_task(client, redis):
    """Served with aiohttp's handler cancellation (as aiohttp's test server runs): the
    submission is shielded, so the task is whole and stays queued."""
    task_id = await _leave_during_wait(client.host, client.port, redis)

    async def get_metrics() -> str:
        return await (await client.get("/metrics")).text()

    assert await _metrics_show_it_left(get_metrics)
    task = await TaskStore(redis, 3600).get(task_id)
    assert task is not None and task.status is Status.PENDING
