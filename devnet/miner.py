"""A simulated miner (a stand-in, not a model) that speaks docs/protocol.md.

Every request must carry valid btauth/1 headers bound to this miner's hotkey, or it gets a
401. Behaviour profiles: accurate (the right answer), noisy (words substituted or dropped at
a word error rate), slow (extra latency), flaky (500s at a failure rate) and garbage (random
junk). Transcription "reads" the text embedded in the WAV (devnet.audio) and answers it in
timed segments too (times shared out by word count); TTS writes such WAVs; summarization
keeps the leading sentences, and returns a text too short to summarize
(shared.tasks.SHORT_TEXT_WORDS words or fewer) as it is.

There is no speech model here: every profile declines audio without the embedded text
(real speech, an MP3) with 422 ``unsupported_audio``, as a real miner declines audio it
cannot decode, rather than answer with a made-up transcript (or, for garbage, made-up junk).

    python -m devnet.miner --port 9101 --profile noisy --wer 0.3 \\
        --wallet-path var/wallets --wallet-name miner1 --wallet-hotkey default
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import random
import re
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import bittensor as bt
from aiohttp import web

from devnet import audio
from devnet.wallets import ensure_wallet
from shared.logging import configure_logging, get_logger
from shared.tasks import SHORT_TEXT_WORDS

PROFILES = ("accurate", "noisy", "slow", "flaky", "garbage")
TASK_TYPES = ("transcription", "tts", "summarization")
MAX_BODY = 64 * 1024 * 1024
SUMMARY_SHARE = 0.25
#: Words per transcription segment.
SEGMENT_WORDS = 8


@dataclass
class ProfileConfig:
    """How a simulated miner behaves."""

    profile: str = "accurate"
    wer: float = 0.3  # noisy: share of words substituted or dropped
    failure_rate: float = 0.5  # flaky: share of requests answered with a 500
    latency: float = 0.0  # seconds added to every answer
    slow_extra: float = 2.0  # slow: seconds added on top of latency
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; one of {', '.join(PROFILES)}")


class Declined(ValueError):
    """Input this miner cannot work on (answered 422 unsupported_audio)."""


@dataclass
class Activity:
    """What the miner saw, for tests and the devnet: accepted requests and peak load."""

    accepted: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10_000))
    rejected: int = 0
    active: int = 0
    peak: int = 0


PROFILE = web.AppKey("profile", ProfileConfig)
HOTKEY = web.AppKey("hotkey", str)
NONCES = web.AppKey("nonces", bt.http_auth.InMemoryNonceStore)
ACTIVITY = web.AppKey("activity", Activity)
RNG = web.AppKey("rng", random.Random)


def create_app(profile_config: ProfileConfig, wallet: Any) -> web.Application:
    """The miner's aiohttp app; ``wallet`` is the bt.Wallet whose hotkey requests target."""
    app = web.Application(client_max_size=MAX_BODY)
    app[PROFILE] = profile_config
    app[HOTKEY] = wallet.hotkey.ss58_address
    # One process, one store: replays within the freshness window are caught.
    app[NONCES] = bt.http_auth.InMemoryNonceStore()
    app[ACTIVITY] = Activity()
    app[RNG] = random.Random(profile_config.seed)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/{task_type}", handle)
    return app


async def health(request: web.Request) -> web.Response:
    return web.json_response(
        {"status": "ok", "profile": request.app[PROFILE].profile, "hotkey": request.app[HOTKEY]}
    )


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def handle(request: web.Request) -> web.Response:
    """Verify the signature, then answer according to the profile."""
    app = request.app
    body = await request.read()
    try:
        caller = bt.http_auth.verify(
            request.headers,
            body,
            method=request.method,
            path=request.path_qs,
            self_hotkey_ss58=app[HOTKEY],
            nonce_store=app[NONCES],
        )
    except bt.http_auth.AuthError as exc:
        app[ACTIVITY].rejected += 1
        return _error(401, "unauthorized", str(exc))
    task_type = request.match_info["task_type"]
    try:
        job = json.loads(body)
        source = str(job["input"])
    except (ValueError, KeyError, TypeError):
        return _error(400, "bad_request", "body must be JSON with an input field")
    if task_type not in TASK_TYPES or job.get("task_type") != task_type:
        return _error(404, "unknown_task_type", f"no such task type: {task_type}")
    activity = app[ACTIVITY]
    activity.accepted.append(
        {"task_id": job.get("task_id"), "nonce": caller.nonce_ns, "hotkey": caller.hotkey_ss58}
    )
    activity.active += 1
    activity.peak = max(activity.peak, activity.active)
    try:
        return await _answer(app, task_type, source)
    finally:
        activity.active -= 1


async def _answer(app: web.Application, task_type: str, source: str) -> web.Response:
    config, rng = app[PROFILE], app[RNG]
    started = time.perf_counter()
    delay = config.latency + (config.slow_extra if config.profile == "slow" else 0.0)
    if delay:
        await asyncio.sleep(delay)
    if config.profile == "flaky" and rng.random() < config.failure_rate:
        return _error(500, "flaky", "simulated failure")
    try:
        output = PRODUCERS[task_type](config, rng, source)
    except Declined as exc:
        return _error(422, "unsupported_audio", str(exc))
    except (binascii.Error, ValueError):
        return _error(400, "bad_input", "input does not decode")
    answer: dict[str, Any] = {
        "output": output,
        "model": f"devnet-{config.profile}",
        "processing_time": round(time.perf_counter() - started, 4),
    }
    if task_type == "transcription":
        answer["segments"] = timed_segments(output, audio.duration(base64.b64decode(source)))
    return web.json_response(answer)


def _transcribe(config: ProfileConfig, rng: random.Random, source: str) -> str:
    wav = base64.b64decode(source, validate=True)
    text = audio.embedded_text(wav)
    if not text:
        raise Declined(
            "this simulated miner (devnet, no speech model) reads only the transcript"
            " devnet.audio embeds in a WAV file, and this audio has none"
        )
    return _shape_text(config, rng, text)


def _speak(config: ProfileConfig, rng: random.Random, source: str) -> str:
    if config.profile == "garbage":
        return base64.b64encode(rng.randbytes(2048)).decode()
    return base64.b64encode(audio.synthesize(_shape_text(config, rng, source))).decode()


def _summarize(config: ProfileConfig, rng: random.Random, source: str) -> str:
    return _shape_text(config, rng, leading_sentences(source))


PRODUCERS = {"transcription": _transcribe, "tts": _speak, "summarization": _summarize}


def timed_segments(text: str, seconds: float) -> list[dict[str, Any]]:
    """The transcript in segments of up to SEGMENT_WORDS words over the audio's ``seconds``,
    each timed by its share of the words: the devnet has no aligner, so the times are
    estimates, as the optional segments of docs/protocol.md allow."""
    words = text.split()
    chunks = [words[i : i + SEGMENT_WORDS] for i in range(0, len(words), SEGMENT_WORDS)]
    segments, done = [], 0
    for chunk in chunks:
        start = seconds * done / len(words)
        done += len(chunk)
        end = seconds * done / len(words)
        segments.append({"start": round(start, 3), "end": round(end, 3), "text": " ".join(chunk)})
    return segments


def leading_sentences(text: str, share: float = SUMMARY_SHARE) -> str:
    """An extractive summary: whole leading sentences up to ``share`` of the words.

    A text of SHORT_TEXT_WORDS words or fewer is its own summary (docs/scoring.md).
    """
    if len(text.split()) <= SHORT_TEXT_WORDS:
        return text.strip()
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    budget = max(1, int(len(text.split()) * share))
    chosen: list[str] = []
    for sentence in sentences:
        if chosen and sum(len(s.split()) for s in chosen) + len(sentence.split()) > budget:
            break
        chosen.append(sentence)
    return " ".join(chosen)


def _shape_text(config: ProfileConfig, rng: random.Random, text: str) -> str:
    """The profile's version of a correct text: intact, corrupted, or junk."""
    if config.profile == "noisy":
        return corrupt(text, config.wer, rng)
    if config.profile == "garbage":
        return junk(rng, max(3, len(text.split())))
    return text


def corrupt(text: str, wer: float, rng: random.Random) -> str:
    """Substitute or drop about ``wer`` of the words (never returns an empty text)."""
    out = []
    for word in text.split():
        if rng.random() < wer:
            if rng.random() < 0.5:
                out.append(junk(rng, 1))
            continue
        out.append(word)
    return " ".join(out) or junk(rng, 1)


def junk(rng: random.Random, words: int) -> str:
    return " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(words)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devnet.miner", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", choices=PROFILES, default="accurate")
    parser.add_argument("--wer", type=float, default=0.3)
    parser.add_argument("--failure-rate", type=float, default=0.5)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--slow-extra", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--wallet-path", default="var/wallets")
    parser.add_argument("--wallet-name", default="miner")
    parser.add_argument("--wallet-hotkey", default="default")
    args = parser.parse_args(argv)
    wallet = ensure_wallet(args.wallet_path, args.wallet_name, args.wallet_hotkey)
    config = ProfileConfig(
        profile=args.profile,
        wer=args.wer,
        failure_rate=args.failure_rate,
        latency=args.latency,
        slow_extra=args.slow_extra,
        seed=args.seed,
    )
    configure_logging()
    get_logger("devnet.miner").info(
        "miner_starting",
        port=args.port,
        profile=args.profile,
        hotkey=wallet.hotkey.ss58_address,
    )
    web.run_app(
        create_app(config, wallet),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
