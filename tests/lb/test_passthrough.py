"""Pass-through: the instance gets the client's request and the client the instance's answer,
byte for byte, minus hop-by-hop headers; nothing decompressed or re-encoded."""

from __future__ import annotations

import gzip

import pytest
from aiohttp import web
from multidict import CIMultiDict

from devnet import whisperx
from devnet.audio import synthesize

BOUNDARY = "lb-test-boundary-7d2f"
WHISPERX_FIELDS = {
    "language": "en",
    "enable_diarization": "true",
    "min_speakers": "2",
    "max_speakers": "3",
    "batch_size": "16",
    "optimized_alignment": "false",
    "initial_prompt": "Zoë's naïve café, \u00fcber",
}


def multipart(audio: bytes, fields: dict[str, str]) -> bytes:
    """A multipart/form-data body built by hand, so its exact bytes are known."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + audio
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _without_date(raw_headers) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in raw_headers if name.lower() != b"date"]


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
async def test_whisperx_answers_are_identical_through_the_lb(
    aiohttp_server, aiohttp_client, make_lb, response_format
):
    instance = await aiohttp_server(whisperx.create_app())
    direct = await aiohttp_client(instance)
    client = await make_lb(f"http://127.0.0.1:{instance.port}")
    audio = synthesize("the lb passes every byte of this transcript through unchanged " * 3)
    body = multipart(audio, {**WHISPERX_FIELDS, "response_format": response_format})
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    expected = await direct.post("/v1/audio/transcriptions", data=body, headers=headers)
    got = await client.post("/v1/audio/transcriptions", data=body, headers=headers)
    assert (got.status, got.reason) == (expected.status, expected.reason) == (200, "OK")
    assert await got.read() == await expected.read()
    assert _without_date(got.raw_headers) == _without_date(expected.raw_headers)


async def test_the_request_reaches_the_instance_untouched(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    body = multipart(synthesize("every field"), {**WHISPERX_FIELDS, "response_format": "srt"})
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    response = await client.post(
        "/v1/audio/transcriptions?model=large-v3",
        data=body,
        headers={"Content-Type": content_type, "X-Custom": "kept", "Authorization": "Bearer t"},
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
    )
    assert response.status == 200
    (received,) = instance.received
    assert received.body == body
    assert received.query == "model=large-v3"
    assert received.headers["Content-Type"] == content_type
    # Content-Length is preserved, so the instance sees a plain (not chunked) upload.
    assert received.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in received.headers
    assert received.headers["X-Custom"] == "kept"
    assert received.headers["Authorization"] == "Bearer t"
    assert received.headers["X-Forwarded-For"] == "127.0.0.1"
    assert received.headers["X-Request-ID"]
    # The LB adds nothing the client did not ask for (an Accept-Encoding would invite gzip).
    for name in ("Accept", "Accept-Encoding", "User-Agent"):
        assert name not in received.headers


async def test_a_chunked_upload_streams_through(make_instance, make_lb):
    instance = await make_instance()
    client = await make_lb(instance)
    pieces = [bytes([n]) * 70_000 for n in range(20)]

    async def generate():
        for piece in pieces:
            yield piece

    response = await client.post("/v1/audio/transcriptions", data=generate())
    assert response.status == 200
    assert instance.received[0].body == b"".join(pieces)


async def test_status_headers_and_body_pass_through_minus_hop_by_hop(make_instance, make_lb):
    payload = bytes(range(256)) * 3

    async def unusual(request: web.Request, received) -> web.StreamResponse:
        headers = CIMultiDict(
            [
                ("Content-Type", "application/x-custom"),
                ("X-Dup", "1"),
                ("X-Dup", "2"),
                ("Set-Cookie", "a=1; Path=/"),
                ("Set-Cookie", "b=2; Path=/"),
                ("Connection", "X-Hop"),
                ("X-Hop", "connection-specific"),
                ("Keep-Alive", "timeout=5"),
            ]
        )
        return web.Response(status=299, reason="Unusual But Fine", body=payload, headers=headers)

    instance = await make_instance(reply=unusual)
    # A host name, not an IP: aiohttp's cookie jars ignore cookies from IP addresses.
    client = await make_lb(instance.url.replace("127.0.0.1", "localhost"))
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    assert (response.status, response.reason) == (299, "Unusual But Fine")
    assert await response.read() == payload
    assert response.headers["Content-Type"] == "application/x-custom"
    assert response.headers["Content-Length"] == str(len(payload))
    assert response.headers.getall("X-Dup") == ["1", "2"]
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    for hop in ("X-Hop", "Keep-Alive"):
        assert hop not in response.headers
    assert "X-Hop" not in response.headers.get("Connection", "")

    # The LB keeps no cookie jar: one client's cookies never reach the instance for another.
    client.session.cookie_jar.clear()
    await client.post("/v1/audio/transcriptions", data=b"y")
    assert "Cookie" not in instance.received[1].headers


async def test_gzip_answers_pass_through_undecoded(make_instance, make_lb):
    compressed = gzip.compress(b'{"text": "' + b"compressed " * 500 + b'"}')

    async def gzipped(request: web.Request, received) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(body=compressed, headers=headers)

    instance = await make_instance(reply=gzipped)
    client = await make_lb(instance)
    response = await client.post("/v1/audio/transcriptions", data=b"x", auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(compressed))
    assert await response.read() == compressed


async def test_a_large_streamed_answer_arrives_whole(make_instance, make_lb):
    chunk = bytes(range(256)) * 4096

    async def stream(request: web.Request, received) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        for _ in range(40):
            await response.write(chunk)
        return response

    client = await make_lb(await make_instance(reply=stream))
    response = await client.post("/v1/audio/transcriptions", data=b"x")
    assert await response.read() == chunk * 40


async def test_redirects_reach_the_client_unfollowed(make_instance, make_lb):
    async def redirect(request: web.Request, received) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": "/elsewhere"})

    instance = await make_instance(reply=redirect)
    client = await make_lb(instance)
    response = await client.post("/v1/audio/transcriptions", data=b"x", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (307, "/elsewhere")
    assert len(instance.received) == 1
