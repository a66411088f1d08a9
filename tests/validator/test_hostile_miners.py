"""Property-based tests of the miner-response parser against hostile miners.

Every answer comes over real HTTP on loopback from a miner-like server that first checks
the request's btauth/1 signature (signed by the real MinerClient with a real wallet) and
then answers whatever hypothesis generated: any JSON, any bytes, oversized bodies, bodies
that never end, malformed HTTP framing. The property: ``MinerClient.query`` raises nothing
and returns either a usable answer that follows the protocol's rules or a failed response
(which the processor scores 0). test_hostile_validator.py runs them through a validator.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import math
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import bittensor as bt
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.validator.client import MAX_MODEL_NAME, MinerClient, MinerRequest, MinerResponse
from services.validator.miners import Miner

#: The client's MINER_MAX_RESPONSE_BYTES in these tests: small, so "huge" is cheap to send.
LIMIT = 4096
#: Seconds one query may take (MinerRequest.timeout); bodies that never end hit it.
TIMEOUT = 0.3
#: How far past its timeout a query may run before the test calls it a hang.
SLACK = 5.0
#: Every failure kind the client documents (docs/protocol.md); anything else is a bug.
FAILURE_KINDS = {"timeout", "connection", "bad_json", "empty_output", "bad_base64", "too_large"}

#: Shared by every property test: many examples, each a real HTTP round trip.
PROPERTY = settings(
    max_examples=80,
    deadline=None,
    # The servers and the client session are reused by every example on purpose: each
    # example scripts the server's next answer, nothing carries over between examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def known_failure(error: str | None) -> bool:
    return error in FAILURE_KINDS or (error or "").startswith("http_")


@dataclass
class Script:
    """How the scripted miner answers the next request.

    ``then`` says what happens after ``body``: "end" (a complete answer), "stall" (the
    body stops mid-way and the connection stays open), "flood" (bytes keep coming, fast)
    or "trickle" (one byte at a time, for ever).
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    then: str = "end"


@dataclass
class ScriptedMiner:
    """A miner-like aiohttp server: checks the signature, then follows its script."""

    hotkey: str
    script: Script = field(default_factory=Script)
    url: str = ""
    accepted: int = 0
    rejected: int = 0
    nonces: Any = field(default_factory=bt.http_auth.InMemoryNonceStore)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/{task_type}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            bt.http_auth.verify(
                request.headers, body, method="POST", path=request.path_qs,
                self_hotkey_ss58=self.hotkey, nonce_store=self.nonces,
            )  # fmt: skip
        except bt.http_auth.AuthError as exc:
            self.rejected += 1
            return web.json_response({"error": str(exc)}, status=401)
        self.accepted += 1
        script = self.script
        if script.then == "end" and not script.chunked:
            return web.Response(
                status=script.status,
                body=script.body,
                content_type=script.content_type,
                headers=script.headers,
            )
        response = web.StreamResponse(status=script.status, headers=script.headers)
        response.content_type = script.content_type
        if script.chunked or script.then != "end":
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(script.body)
            if script.then == "end":
                await response.write_eof()
                return response
            # Keep the body open until the client gives up and closes the connection.
            while request.transport is not None and not request.transport.is_closing():
                if script.then == "flood":
                    await response.write(b" " * 1024)
                elif script.then == "trickle":
                    await response.write(b" ")
                await asyncio.sleep(0.001 if script.then == "flood" else 0.02)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what a bounded reader does
        return response


@pytest.fixture
async def scripted(aiohttp_server, miner_wallets) -> ScriptedMiner:
    miner = ScriptedMiner(miner_wallets[0].hotkey.ss58_address)
    server = await aiohttp_server(miner.app(), host="127.0.0.1")
    miner.url = str(server.make_url("")).rstrip("/")
    return miner


@pytest.fixture
async def client(validator_wallet) -> AsyncIterator[MinerClient]:
    async with aiohttp.ClientSession() as session:
        yield MinerClient(session, validator_wallet.hotkey, LIMIT)


class Reachable(Protocol):
    """Any test miner: a scripted aiohttp one here, or the raw TCP one of the framing tests."""

    hotkey: str
    url: str


async def ask(
    client: MinerClient, miner: Reachable, task_type: str = "transcription"
) -> MinerResponse:
    """One real query; a hang past TIMEOUT + SLACK fails the test instead of blocking it."""
    request = MinerRequest("t-hostile", task_type, "en", "aGVsbG8=", TIMEOUT)
    async with asyncio.timeout(TIMEOUT + SLACK):
        return await client.query(
            Miner(7, miner.hotkey, miner.url), request, binary=task_type == "tts"
        )


def assert_sound(response: MinerResponse) -> None:
    """What holds for any answer: a known failure with no output, or a usable answer."""
    event(f"outcome: {response.error or 'ok'}")  # --hypothesis-show-statistics shows the mix
    if response.ok:
        assert response.output
        assert 0 < len(response.model) <= MAX_MODEL_NAME
        t = response.reported_time
        assert t is None or (math.isfinite(t) and t >= 0)
    else:
        assert known_failure(response.error), response.error
        assert response.output == b""


# -- Strategies ------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
#: Outputs a miner might send: text, base64 (TTS) and anything else JSON can carry.
outputs = st.text(max_size=200) | st.binary(max_size=200).map(
    lambda b: base64.b64encode(b).decode()
)
#: Answers shaped like the protocol's, with each field of any type or missing.
protocol_like = st.fixed_dictionaries(
    {},
    optional={
        "output": outputs | outputs | json_values,
        "model": st.text(max_size=300) | json_values,
        "processing_time": st.floats() | st.integers() | st.text(max_size=10) | json_values,
        "extra": json_values,
    },
)


def sane_seconds(value: Any) -> float | None:
    """The documented reading of processing_time: a finite, non-negative number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too big for a float
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def encode_json(value: Any) -> bytes:
    # allow_nan: NaN and Infinity are what a sloppy miner's json library writes.
    return json.dumps(value, allow_nan=True).encode()


# -- Properties over real HTTP ---------------------------------------------------------------


@PROPERTY
@given(answer=protocol_like | json_values, task_type=st.sampled_from(["transcription", "tts"]))
async def test_any_json_answer_is_usable_only_if_it_follows_the_protocol(
    scripted, client, answer, task_type
):
    """Wrong types (output as number/list/null, missing fields, processing_time as text,
    JSON that is a list, ...) are failures; the rest is parsed exactly as documented."""
    scripted.script = Script(body=encode_json(answer))
    response = await ask(client, scripted, task_type)
    assert_sound(response)
    output = answer.get("output") if isinstance(answer, dict) else None
    if not isinstance(answer, dict):
        assert response.error == "bad_json"
    elif not isinstance(output, str) or not output.strip():
        assert response.error == "empty_output"
    elif task_type == "tts":
        try:
            expected = base64.b64decode(output, validate=True)
        except ValueError:
            assert response.error == "bad_base64"
        else:
            assert response.ok and response.output == expected
    else:
        assert response.ok
        assert response.output == output.encode("utf-8", errors="replace")
    if response.ok:
        model = answer.get("model")
        good_model = isinstance(model, str) and model
        assert response.model == (model[:MAX_MODEL_NAME] if good_model else "unknown")
        assert response.reported_time == sane_seconds(answer.get("processing_time"))
    assert scripted.rejected == 0


@PROPERTY
@given(
    body=st.binary(max_size=LIMIT)
    | st.builds(
        # Non-UTF-8 bytes inside an otherwise well-formed answer.
        lambda junk, model: b'{"output": "' + junk + b'", "model": "' + model + b'"}',
        st.binary(min_size=1, max_size=200),
        st.binary(max_size=20),
    )
    | st.text(max_size=200).map(lambda s: json.dumps({"output": s}).encode("latin-1", "replace")),
    content_type=st.sampled_from(["application/json", "text/plain", "application/octet-stream"]),
)
async def test_any_bytes_are_parsed_or_refused_never_raised(scripted, client, body, content_type):
    """Arbitrary and non-UTF-8 bodies: a failure, or an answer whose JSON really was valid."""
    scripted.script = Script(body=body, content_type=content_type)
    response = await ask(client, scripted)
    assert_sound(response)
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        assert response.error == "bad_json"
    else:
        assert response.ok == (
            isinstance(parsed, dict)
            and isinstance(parsed.get("output"), str)
            and bool(parsed["output"].strip())
        )


@PROPERTY
@given(
    size=st.integers(LIMIT + 1, LIMIT * 16),
    chunked=st.booleans(),
    wrapper=st.sampled_from(["output", "model", "padding"]),
)
async def test_answers_over_the_size_limit_are_too_large(scripted, client, size, chunked, wrapper):
    """Huge output (declared with Content-Length or streamed chunked) is refused unread."""
    body = json.dumps({"output": "ok", wrapper: "x" * size}).encode()
    scripted.script = Script(body=body, chunked=chunked)
    response = await ask(client, scripted)
    assert response.error == "too_large" and response.output == b""


@PROPERTY
@given(
    prefix=st.sampled_from([b"", b'{"output": "', b'{"output": "partial answer", "model"', b"["]),
    then=st.sampled_from(["stall", "flood", "trickle"]),
)
async def test_bodies_that_never_end_are_cut_by_the_timeout_or_the_size_limit(
    scripted, client, prefix, then
):
    """A miner that stalls mid-body or streams for ever costs one timeout at most."""
    scripted.script = Script(body=prefix, then=then)
    response = await ask(client, scripted)
    expected = {"flood": {"too_large", "timeout"}, "stall": {"timeout"}, "trickle": {"timeout"}}
    assert response.error in expected[then]


@PROPERTY
@given(status=st.integers(201, 599).filter(lambda s: s not in (204, 304)), body=st.binary())
async def test_any_other_status_is_a_failure(scripted, client, status, body):
    scripted.script = Script(
        status=status, body=encode_json({"output": "right answer, wrong status"}) + body
    )
    response = await ask(client, scripted)
    assert response.error == f"http_{status}"


async def test_a_compressed_answer_that_inflates_past_the_limit_is_too_large(scripted, client):
    """A gzip bomb: 40 MB of output in a few KB on the wire; the limit counts inflated bytes."""
    bomb = gzip.compress(b'{"output": "' + b"a" * 40_000_000 + b'"}', compresslevel=9)
    assert len(bomb) < 100_000
    scripted.script = Script(body=bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        response = await ask(client, scripted)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.error == "too_large"
    # Inflated piecemeal and dropped at the limit: never the 40 MB at once.
    assert peak < 10_000_000
    assert scripted.accepted == 1 and scripted.rejected == 0
