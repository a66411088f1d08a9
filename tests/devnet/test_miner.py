"""The simulated miner: btauth/1 checks, the protocol's answers, and each profile."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sys

import aiohttp
import bittensor as bt
import pytest

from devnet import audio
from devnet.miner import ACTIVITY, ProfileConfig, create_app, leading_sentences
from devnet.redis_server import free_port
from services.validator.scoring import wer_accuracy, words

TEXT = "the validator sends signed requests to every miner in the subnet"
ARTICLE = (
    "Rain is expected across the north on Tuesday. Temperatures will stay below average. "
    "Forecasters advise drivers to take care on flooded roads. The weekend looks drier. "
    "Farmers welcomed the rain after a long dry spell in the spring."
)


def job(task_type: str, source: str) -> bytes:
    body = {"task_id": "t1", "task_type": task_type, "language": "en", "input": source}
    return json.dumps({**body, "timeout": 5}).encode()


@pytest.fixture
def miner_wallet(miner_wallets):
    return miner_wallets[0]


@pytest.fixture
def make_client(aiohttp_client, miner_wallet):
    async def make(profile: str = "accurate", **options):
        config = ProfileConfig(profile=profile, seed=1, **options)
        return await aiohttp_client(create_app(config, miner_wallet))

    return make


async def post(client, validator_wallet, receiver: str, task_type: str, body: bytes, **sign):
    path = f"/v1/{task_type}"
    headers = bt.http_auth.sign(
        validator_wallet, method="POST", path=path, body=body, receiver_ss58=receiver, **sign
    )
    return await client.post(path, data=body, headers=headers), headers


async def test_accurate_answers_each_task_type(make_client, validator_wallet, miner_wallet):
    client = await make_client()
    hotkey = miner_wallet.hotkey.ss58_address
    wav = base64.b64encode(audio.synthesize(TEXT)).decode()
    resp, _ = await post(
        client, validator_wallet, hotkey, "transcription", job("transcription", wav)
    )
    assert resp.status == 200
    answer = await resp.json()
    assert answer["output"] == TEXT and answer["model"] == "devnet-accurate"
    assert isinstance(answer["processing_time"], float)
    # Timed segments (docs/protocol.md): the transcript, over the audio from start to end.
    segments = answer["segments"]
    assert " ".join(s["text"] for s in segments) == TEXT and len(segments) > 1
    seconds = audio.duration(audio.synthesize(TEXT))
    assert segments[0]["start"] == 0 and segments[-1]["end"] == round(seconds, 3)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segments))

    resp, _ = await post(client, validator_wallet, hotkey, "tts", job("tts", TEXT))
    speech = base64.b64decode((await resp.json())["output"])
    assert audio.embedded_text(speech) == TEXT and audio.duration(speech) > 1

    resp, _ = await post(
        client, validator_wallet, hotkey, "summarization", job("summarization", ARTICLE)
    )
    summary = (await resp.json())["output"]
    assert summary == leading_sentences(ARTICLE)
    assert summary.startswith("Rain is expected") and len(summary) < len(ARTICLE)


async def test_audio_without_embedded_text_is_declined_not_made_up(
    make_client, validator_wallet, miner_wallet
):
    """No speech model: every profile answers 422 for audio it cannot read (real speech,
    an MP3), garbage included: no made-up transcript, and no made-up junk either."""
    hotkey = miner_wallet.hotkey.ss58_address
    unreadable = [audio.synthesize(""), b"ID3\x04\x00" + b"\xff\xfb" * 200]
    for profile in ("accurate", "noisy", "slow", "garbage"):
        client = await make_client(profile=profile, slow_extra=0.0)
        for data in unreadable:
            wav = base64.b64encode(data).decode()
            resp, _ = await post(
                client, validator_wallet, hotkey, "transcription", job("transcription", wav)
            )
            assert resp.status == 422, profile
            assert (await resp.json())["error"]["code"] == "unsupported_audio"


async def test_text_too_short_to_summarize_comes_back_whole(
    make_client, validator_wallet, miner_wallet
):
    client = await make_client()
    hotkey = miner_wallet.hotkey.ss58_address
    short = "Long article text here... It has two sentences."
    resp, _ = await post(
        client, validator_wallet, hotkey, "summarization", job("summarization", short)
    )
    assert (await resp.json())["output"] == short
    assert leading_sentences(short) == short
    assert len(leading_sentences(ARTICLE).split()) < len(ARTICLE.split())


async def test_requests_failing_btauth_are_rejected(make_client, validator_wallet, miner_wallet):
    client = await make_client()
    hotkey = miner_wallet.hotkey.ss58_address
    body = job("summarization", ARTICLE)
    unsigned = await client.post("/v1/summarization", data=body)
    assert unsigned.status == 401
    # Signed for another miner.
    other, _ = await post(client, validator_wallet, validator_wallet.hotkey.ss58_address,
                          "summarization", body)  # fmt: skip
    assert other.status == 401
    # A signature over different bytes.
    headers = bt.http_auth.sign(
        validator_wallet, method="POST", path="/v1/summarization", body=b"{}", receiver_ss58=hotkey
    )
    tampered = await client.post("/v1/summarization", data=body, headers=headers)
    assert tampered.status == 401
    # The same signed request twice: the second is a replay.
    first, headers = await post(client, validator_wallet, hotkey, "summarization", body)
    assert first.status == 200
    replay = await client.post("/v1/summarization", data=body, headers=headers)
    assert replay.status == 401
    assert "already accepted" in (await replay.json())["error"]["message"]
    assert client.server.app[ACTIVITY].rejected == 4


async def test_noisy_garbage_and_flaky_profiles(make_client, validator_wallet, miner_wallet):
    hotkey = miner_wallet.hotkey.ss58_address
    wav = base64.b64encode(audio.synthesize(TEXT)).decode()

    noisy = await make_client("noisy", wer=0.5)
    resp, _ = await post(
        noisy, validator_wallet, hotkey, "transcription", job("transcription", wav)
    )
    heard = (await resp.json())["output"]
    assert heard != TEXT and 0 < wer_accuracy(TEXT, heard) < 1

    garbage = await make_client("garbage")
    resp, _ = await post(
        garbage, validator_wallet, hotkey, "transcription", job("transcription", wav)
    )
    junk = (await resp.json())["output"]
    assert not set(words(junk)) & set(words(TEXT))
    resp, _ = await post(garbage, validator_wallet, hotkey, "tts", job("tts", TEXT))
    noise = base64.b64decode((await resp.json())["output"])
    assert audio.embedded_text(noise) is None

    flaky = await make_client("flaky", failure_rate=1.0)
    resp, _ = await post(flaky, validator_wallet, hotkey, "tts", job("tts", TEXT))
    assert resp.status == 500


async def test_unknown_task_type_and_bad_body(make_client, validator_wallet, miner_wallet):
    client = await make_client()
    hotkey = miner_wallet.hotkey.ss58_address
    resp, _ = await post(client, validator_wallet, hotkey, "translation", job("translation", "x"))
    assert resp.status == 404
    resp, _ = await post(client, validator_wallet, hotkey, "tts", b"not json")
    assert resp.status == 400


async def test_command_line_serves_the_miner(tmp_path, validator_wallet):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "devnet.miner", "--port", str(port), "--profile", "noisy",
        "--wer", "0.2", "--wallet-path", str(tmp_path), "--wallet-name", "cli-miner",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(400):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        health = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the miner did not answer /health")
        wallet = bt.Wallet("cli-miner", "default", str(tmp_path))
        assert health == {
            "status": "ok",
            "profile": "noisy",
            "hotkey": wallet.hotkey.ss58_address,
        }
    finally:
        proc.terminate()
        await proc.wait()
