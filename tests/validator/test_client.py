"""The miner client against hostile miners: every bad answer is a failed response, never an
exception, and every request is signed for exactly what is sent."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import bittensor as bt
import pytest
from aiohttp import web

from services.validator.client import MinerClient, MinerRequest
from services.validator.miners import Miner

LIMIT = 4096
SEGMENTS = [{"start": 0, "end": 0.5004, "text": "one"}, {"start": 0.5, "end": 1.25, "text": "two"}]


def hostile_app(hotkey: str) -> web.Application:
    """One route per misbehaviour; each first checks the btauth/1 signature."""
    nonces = bt.http_auth.InMemoryNonceStore()
    answers = {
        "ok": lambda: web.json_response({"output": "fine", "model": "m", "processing_time": 0.1}),
        "badjson": lambda: web.Response(text="{not json"),
        "list": lambda: web.json_response(["output"]),
        "empty": lambda: web.json_response({"output": "  ", "model": "m"}),
        "number": lambda: web.json_response({"output": 42}),
        "huge": lambda: web.json_response({"output": "x" * (LIMIT * 2)}),
        "redirect": lambda: web.HTTPFound("/ok/v1/summarization"),
        "error": lambda: web.Response(status=503),
        "badb64": lambda: web.json_response({"output": "%%%not base64%%%"}),
        "weird": lambda: web.json_response(
            {"output": "\ud800 ok", "model": 7, "processing_time": 1e400}
        ),
        "segments": lambda: web.json_response({"output": "one two", "segments": SEGMENTS}),
        "badsegments": lambda: web.json_response(
            {"output": "one two", "segments": [{"start": 2, "end": 1, "text": "two"}]}
        ),
    }

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            bt.http_auth.verify(
                request.headers, body, method="POST", path=request.path_qs,
                self_hotkey_ss58=hotkey, nonce_store=nonces,
            )  # fmt: skip
        except bt.http_auth.AuthError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        kind = request.match_info["kind"]
        if kind == "slow":
            await asyncio.sleep(5)
        answer = answers[kind]()
        if isinstance(answer, web.HTTPException):
            raise answer
        return answer

    app = web.Application()
    app.router.add_post("/{kind}/v1/{task_type}", handle)
    return app


@pytest.fixture
async def hostile(aiohttp_server, miner_wallets):
    hotkey = miner_wallets[0].hotkey.ss58_address
    server = await aiohttp_server(hostile_app(hotkey), host="127.0.0.1")
    return hotkey, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def client(validator_wallet):
    async with aiohttp.ClientSession() as session:
        yield MinerClient(session, validator_wallet.hotkey, LIMIT)


def request(task_type: str = "summarization", timeout: float = 2.0) -> MinerRequest:
    return MinerRequest("t1", task_type, "en", "some input text", timeout)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("badjson", "bad_json"),
        ("list", "bad_json"),
        ("empty", "empty_output"),
        ("number", "empty_output"),
        ("huge", "too_large"),
        ("redirect", "http_302"),
        ("error", "http_503"),
    ],
)
async def test_hostile_answers_are_failed_responses(hostile, client, kind, error):
    hotkey, base = hostile
    response = await client.query(Miner(1, hotkey, f"{base}/{kind}"), request(), binary=False)
    assert not response.ok and response.error == error and response.output == b""


async def test_a_sound_answer_and_odd_fields(hostile, client):
    hotkey, base = hostile
    ok = await client.query(Miner(1, hotkey, f"{base}/ok"), request(), binary=False)
    assert ok.ok and ok.output == b"fine" and ok.model == "m" and ok.reported_time == 0.1
    weird = await client.query(Miner(1, hotkey, f"{base}/weird"), request(), binary=False)
    assert weird.ok and weird.model == "unknown" and weird.reported_time is None
    assert weird.output.endswith(b" ok")


async def test_segments_are_kept_when_well_formed_and_dropped_otherwise(hostile, client):
    hotkey, base = hostile
    good = await client.query(Miner(1, hotkey, f"{base}/segments"), request(), binary=False)
    assert good.ok and good.segments == [
        {"start": 0.0, "end": 0.5, "text": "one"},
        {"start": 0.5, "end": 1.25, "text": "two"},
    ]
    # Segments are optional: malformed ones (an end before its start) go, the answer stays.
    bad = await client.query(Miner(1, hotkey, f"{base}/badsegments"), request(), binary=False)
    assert bad.ok and bad.output == b"one two" and bad.segments is None
    plain = await client.query(Miner(1, hotkey, f"{base}/ok"), request(), binary=False)
    assert plain.segments is None


async def test_binary_outputs_must_be_base64(hostile, client):
    hotkey, base = hostile
    bad = await client.query(Miner(1, hotkey, f"{base}/badb64"), request("tts"), binary=True)
    assert bad.error == "bad_base64"


async def test_timeouts_and_refused_connections(hostile, client):
    hotkey, base = hostile
    slow = await client.query(Miner(1, hotkey, f"{base}/slow"), request(timeout=0.2), binary=False)
    assert slow.error == "timeout"
    gone = await client.query(Miner(1, hotkey, "http://127.0.0.1:9"), request(), binary=False)
    assert gone.error == "connection"


async def test_each_query_signs_anew_and_a_replay_is_rejected(hostile, client):
    hotkey, base = hostile
    miner = Miner(1, hotkey, f"{base}/ok")
    first = await client.query(miner, request(), binary=False)
    second = await client.query(miner, request(), binary=False)
    assert first.ok and second.ok and first.nonce != second.nonce
    # Resending a request with its old signature is what the protocol forbids.
    body = request().body()
    headers = client.sign(miner, "/ok/v1/summarization", body)
    async with aiohttp.ClientSession() as session:
        url = f"{base}/ok/v1/summarization"
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 200
        async with session.post(url, data=body, headers=headers) as resp:
            assert resp.status == 401
            assert "already accepted" in (await resp.json())["error"]


def test_request_body_is_the_documented_json():
    body = json.loads(MinerRequest("t9", "tts", "fr", "bonjour", 60.0).body())
    assert body == {
        "task_id": "t9", "task_type": "tts", "language": "fr", "input": "bonjour", "timeout": 60.0,
    }  # fmt: skip
