"""The /v1 API with the official OpenAI SDK, and the README's /v1 curl examples with real
curl, against the devnet stack (real processes, real Redis, shipped SYNC_WAIT)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import openai
import pytest
from redis.asyncio import Redis

from devnet import audio
from devnet.stack import Stack
from services.gateway.apikeys import ApiKeys
from services.gateway.openai.encoders import SPEECH_FORMATS
from services.gateway.openai.formats import FORMATS
from services.gateway.openai.models import MODELS
from shared import keys

REPO = Path(__file__).resolve().parents[2]
SPOKEN = "the validator compares every miner with the reference transcript and keeps the best"
SPEECH = "Hello from the OpenAI compatible gateway."
#: Codec PyAV reports for each encoded speech format (pcm is raw samples: no container).
CODECS = {"wav": "pcm_s16le", "mp3": "mp3", "opus": "opus", "flac": "flac"}


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    async def create() -> str:
        redis = Redis.from_url(stack.redis_url)
        try:
            return (await ApiKeys(redis).create("openai-sdk"))[1]
        finally:
            await redis.aclose()

    return asyncio.run(create())


@pytest.fixture
def client(stack: Stack, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{stack.ports.gateway}/v1", api_key=api_key
    ) as sdk:
        yield sdk


def _decoded_seconds(data: bytes) -> tuple[str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.rate


def test_transcriptions_in_every_response_format(client: openai.OpenAI, tmp_path: Path):
    wav = audio.synthesize(SPOKEN)
    seconds = audio.duration(wav)
    path = tmp_path / "speech.wav"
    path.write_bytes(wav)
    answers = {}
    for response_format in FORMATS:
        with path.open("rb") as file:
            answers[response_format] = client.audio.transcriptions.create(
                model="whisper-1", file=file, response_format=response_format, language="en"
            )
    assert answers["json"].text == SPOKEN
    assert answers["text"].strip() == SPOKEN
    verbose = answers["verbose_json"]
    assert verbose.text == SPOKEN and verbose.language == "en"
    assert verbose.duration == pytest.approx(seconds)
    # The devnet miners return timed segments (docs/protocol.md): they cover the transcript
    # and the audio from start to end.
    segments = verbose.segments
    assert len(segments) > 1
    assert " ".join(s.text for s in segments) == SPOKEN
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(seconds)
    srt_cues = re.findall(r"(\d+)\n(\S+) --> (\S+)\n(.+)\n", answers["srt"])
    assert [int(n) for n, *_ in srt_cues] == list(range(1, len(segments) + 1))
    assert srt_cues[0][1] == "00:00:00,000" and " ".join(c[3] for c in srt_cues) == SPOKEN
    vtt = answers["vtt"]
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = re.findall(r"(\S+) --> (\S+)\n(.+)\n", vtt)
    assert len(vtt_cues) == len(segments) and vtt_cues[0][0] == "00:00:00.000"


def test_speech_in_every_format_is_valid_audio(client: openai.OpenAI):
    spoken = {}
    for response_format in SPEECH_FORMATS:
        answer = client.audio.speech.create(
            model="tts-1", voice="alloy", input=SPEECH, response_format=response_format
        )
        media_type = answer.response.headers["content-type"]
        assert media_type == SPEECH_FORMATS[response_format].media_type
        spoken[response_format] = answer.content
    # wav is the miner's own answer: the devnet's "speech" carries its text.
    assert audio.embedded_text(spoken["wav"]) == SPEECH
    seconds = audio.duration(spoken["wav"])
    for response_format, codec in CODECS.items():
        name, decoded = _decoded_seconds(spoken[response_format])
        assert name.startswith(codec), (response_format, name)
        # Encoders pad to whole frames: a few milliseconds, never a different length.
        assert decoded == pytest.approx(seconds, abs=0.05), response_format
    # pcm: 24 kHz, 16-bit mono samples, as OpenAI documents it.
    assert len(spoken["pcm"]) / 2 / 24_000 == pytest.approx(seconds, abs=0.01)


def test_models_list(client: openai.OpenAI):
    assert {m.id for m in client.models.list()} == {m.name for m in MODELS}


def test_bad_format_and_bad_key_in_openai_shape(client: openai.OpenAI, stack: Stack):
    async def tasks() -> int:
        redis = Redis.from_url(stack.redis_url)
        try:
            return len(await redis.keys(keys.task("*")))
        finally:
            await redis.aclose()

    before = asyncio.run(tasks())
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="aac")
    error = bad.value.body
    assert error["code"] == "unsupported_response_format" and error["param"] == "response_format"
    assert all(name in error["message"] for name in SPEECH_FORMATS)
    assert asyncio.run(tasks()) == before  # refused before anything was stored
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        client.with_options(api_key="ak_wrong_key").models.list()
    assert unauthorized.value.body["code"] == "invalid_api_key"
    assert unauthorized.value.body["type"] == "authentication_error"


def _readme_block(marker: str) -> str:
    """The README's code block after the comment ``<!-- marker -->``."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```\w+\n(.*?)```", text, re.S)
    assert block, f"README.md has no <!-- {marker} --> block"
    return block.group(1)


def test_readme_curl_and_sdk_examples(stack: Stack, api_key: str, tmp_path: Path):
    script = (
        _readme_block("openai-curl")
        .replace("http://localhost:8000", f"http://127.0.0.1:{stack.ports.gateway}")
        .replace(".venv/bin/python", sys.executable)
        # -sS: no progress meter; --fail-with-body: an HTTP error fails the script.
        .replace("curl ", "curl -sS --fail-with-body ")
    )
    env = {**os.environ, "REDIS_URL": stack.redis_url, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stderr
    print(f"README /v1 curl examples: {script.count('curl ')} curl commands ran")
    out = run.stdout
    assert '"id": "whisper-1"' in out
    assert '{"text": "hello from the subnet"}' in out
    assert "00:00:00,000 --> " in out and "hello from the subnet" in out
    name, seconds = _decoded_seconds((tmp_path / "speech.mp3").read_bytes())
    assert name.startswith("mp3") and seconds > 0
    sdk = _readme_block("openai-sdk").replace(
        "http://localhost:8000", f"http://127.0.0.1:{stack.ports.gateway}"
    )
    run = subprocess.run(
        [sys.executable, "-c", sdk],
        cwd=tmp_path,
        env={**env, "OPENAI_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "hello from the subnet"
    assert audio.embedded_text((tmp_path / "hello.wav").read_bytes()) == "Hello!"
