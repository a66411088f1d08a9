"""Simulated WhisperX instance: a stand-in for the GPU service, not a model.

It speaks the WhisperX HTTP interface the LB and the validator use:

- ``GET /health`` answers ``{"status": "ok", "active_jobs": n}``, where n counts the jobs
  running plus those waiting for a slot (uploads still in transit are not jobs yet);
- ``POST /v1/audio/transcriptions`` (and the legacy ``POST /transcribe``) takes the WhisperX
  form fields (file, language, response_format, enable_diarization, min_speakers,
  max_speakers, batch_size, ...; unknown ones are accepted and ignored) and answers in
  json, text, srt, vtt or verbose_json.

"Transcribing" reads back the text that :mod:`devnet.audio` embeds in a WAV file's INFO
chunk. Audio it cannot read, because it is not WAV (an MP3) or carries no embedded text
(real speech, e.g. from espeak-ng), gets 422 with a JSON ``detail``, the answer a FastAPI
WhisperX server gives for audio it cannot process: the simulation never invents a
transcript. Each job holds one of ``concurrency`` slots for ``seconds_per_audio_second``
times the audio's duration.
``outside_jobs`` slots are taken for good by simulated work from elsewhere (another client
of the same GPU): only ``/health`` shows it, for benchmarks of load-aware routing.

``python -m devnet.whisperx --port 9001 --concurrency 2 --speed 0.5``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import wave
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from devnet.audio import duration, embedded_text
from shared.logging import configure_logging

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: Words per segment in srt, vtt and verbose_json answers.
WORDS_PER_SEGMENT = 12
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
#: aiohttp's default of 1 MiB would refuse a minute and a half of 16 kHz WAV.
MAX_UPLOAD_BYTES = 1 << 30
#: The 422 details for audio the simulation cannot read (it has no speech model).
NOT_WAV = (
    "cannot decode the audio: this simulated WhisperX (devnet, no speech model) reads WAV only"
)
NO_TRANSCRIPT = (
    "no speech recognised: this simulated WhisperX (devnet, no speech model) reads only the"
    " transcript devnet.audio embeds in a WAV file (RIFF INFO/ICMT), and this file has none"
)
#: What the wave module raises on bytes that are not (well-formed) WAV.
WAV_ERRORS = (
    wave.Error,
    EOFError,
    ValueError,
    OSError,
    RuntimeError,
    struct.error,
    ZeroDivisionError,
)


class Jobs:
    """Concurrency slots and the active_jobs figure /health reports."""

    def __init__(self, concurrency: int, outside_jobs: int = 0) -> None:
        # Outside jobs never finish: they hold their slots and count as active for good.
        self.slots = asyncio.Semaphore(concurrency - outside_jobs)
        self.active = outside_jobs

    @contextlib.asynccontextmanager
    async def job(self) -> AsyncIterator[None]:
        """Hold a slot; the job counts as active from the moment it starts waiting."""
        self.active += 1
        try:
            async with self.slots:
                yield
        finally:
            self.active -= 1


class Simulation:
    """How this instance behaves: its timing and whether it keeps the audio at all."""

    def __init__(self, seconds_per_audio_second: float, discard_audio: bool) -> None:
        self.seconds_per_audio_second = seconds_per_audio_second
        self.discard_audio = discard_audio


JOBS = web.AppKey("jobs", Jobs)
SIMULATION = web.AppKey("simulation", Simulation)


class FormError(ValueError):
    """A form field is missing or malformed (answered 422, as FastAPI-based WhisperX does)."""


class Unreadable(ValueError):
    """Audio this simulation cannot transcribe (answered 422 with the reason as detail)."""


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "active_jobs": request.app[JOBS].active})


async def transcribe(request: web.Request) -> web.Response:
    """Read the form, wait for a slot, spend the simulated time, answer in the format asked."""
    simulation = request.app[SIMULATION]
    if simulation.discard_audio:
        return await _discard(request)
    try:
        fields, audio = await _read_form(request)
        response_format = fields.get("response_format", "json")
        if response_format not in RESPONSE_FORMATS:
            raise FormError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}")
        speakers = _speakers(fields)
        text, seconds = _read_audio(audio)
    except (FormError, Unreadable) as exc:
        return web.json_response({"detail": str(exc)}, status=422)
    async with request.app[JOBS].job():
        await asyncio.sleep(seconds * simulation.seconds_per_audio_second)
    language = fields.get("language") or "en"
    return _render(response_format, text, seconds, language, speakers)


async def _discard(request: web.Request) -> web.Response:
    # Benchmark sink: count the upload's bytes and drop them without parsing anything.
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
    return web.json_response({"bytes_received": received})


def _read_audio(audio: bytes) -> tuple[str, float]:
    """The embedded transcript and the duration, or Unreadable: never a made-up text."""
    try:
        seconds = duration(audio)
    except WAV_ERRORS:
        raise Unreadable(NOT_WAV) from None
    text = embedded_text(audio)
    if not text:
        raise Unreadable(NO_TRANSCRIPT)
    return text, seconds


async def _read_form(request: web.Request) -> tuple[dict[str, str], bytes]:
    if not request.content_type.startswith("multipart/"):
        raise FormError("expected a multipart/form-data body")
    fields: dict[str, str] = {}
    audio: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if part.name == "file":
            audio = bytes(await part.read())
        elif part.name:
            fields[part.name] = await part.text()
    if audio is None:
        raise FormError("file is required")
    return fields, audio


def _speakers(fields: dict[str, str]) -> int:
    """How many speakers to label segments with: 0 without diarization."""
    if fields.get("enable_diarization", "").lower() not in TRUE_VALUES:
        return 0
    counts: dict[str, int] = {}
    for name in ("min_speakers", "max_speakers"):
        if fields.get(name):
            try:
                counts[name] = int(fields[name])
            except ValueError:
                raise FormError(f"{name} must be an integer") from None
    speakers = counts.get("min_speakers", 1)
    if "max_speakers" in counts:
        speakers = min(speakers, counts["max_speakers"])
    return max(1, speakers)


def _segments(text: str, seconds: float, speakers: int) -> list[dict]:
    """The text in runs of WORDS_PER_SEGMENT words, timed in proportion to their length."""
    words = text.split() or [text]
    total = len(words)
    segments = []
    for index, first in enumerate(range(0, total, WORDS_PER_SEGMENT)):
        run = words[first : first + WORDS_PER_SEGMENT]
        segment = {
            "id": index,
            "start": round(seconds * first / total, 3),
            "end": round(seconds * (first + len(run)) / total, 3),
            "text": " ".join(run),
        }
        if speakers:
            segment["speaker"] = f"SPEAKER_{index % speakers:02d}"
        segments.append(segment)
    return segments


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _render(
    response_format: str, text: str, seconds: float, language: str, speakers: int
) -> web.Response:
    if response_format == "json":
        return web.json_response({"text": text})
    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    segments = _segments(text, seconds, speakers)
    if response_format == "verbose_json":
        return web.json_response(
            {
                "task": "transcribe",
                "language": language,
                "duration": round(seconds, 3),
                "text": text,
                "segments": segments,
            }
        )
    if response_format == "srt":
        cues = [
            f"{s['id'] + 1}\n{_timestamp(s['start'], ',')} --> {_timestamp(s['end'], ',')}\n"
            f"{s['text']}\n"
            for s in segments
        ]
        return web.Response(text="\n".join(cues), content_type="application/x-subrip")
    cues = [
        f"{_timestamp(s['start'], '.')} --> {_timestamp(s['end'], '.')}\n{s['text']}\n"
        for s in segments
    ]
    return web.Response(text="WEBVTT\n\n" + "\n".join(cues), content_type="text/vtt")


def create_app(
    *,
    concurrency: int = 4,
    seconds_per_audio_second: float = 0.0,
    discard_audio: bool = False,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    outside_jobs: int = 0,
) -> web.Application:
    """A simulated instance: ``concurrency`` slots, time proportional to audio duration.

    Uploads are held in memory, up to ``max_upload_bytes`` (larger ones get 413).
    ``discard_audio`` turns it into a benchmark sink: uploads of any size are counted and
    dropped unparsed, and every answer is ``{"bytes_received": n}``, at once.
    ``outside_jobs`` (fewer than ``concurrency``) slots stay busy with work from elsewhere.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not 0 <= outside_jobs < concurrency:
        raise ValueError("outside_jobs must be at least 0 and below concurrency")
    app = web.Application(client_max_size=max_upload_bytes)
    app[JOBS] = Jobs(concurrency, outside_jobs)
    app[SIMULATION] = Simulation(seconds_per_audio_second, discard_audio)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/audio/transcriptions", transcribe)
    app.router.add_post("/transcribe", transcribe)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devnet.whisperx", description="Simulated WhisperX instance (no model)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--concurrency", type=int, default=4, help="jobs processed at once")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="processing seconds per second of audio (0: instant, 0.5: twice real time)",
    )
    parser.add_argument(
        "--discard-audio",
        action="store_true",
        help="benchmark sink: drop uploads unparsed and answer at once",
    )
    parser.add_argument(
        "--outside-jobs",
        type=int,
        default=0,
        help="slots held for good by simulated outside work (counted in /health active_jobs)",
    )
    args = parser.parse_args(argv)
    configure_logging("development", "INFO")
    log = structlog.get_logger(component="devnet.whisperx")
    app = create_app(
        concurrency=args.concurrency,
        seconds_per_audio_second=args.speed,
        discard_audio=args.discard_audio,
        outside_jobs=args.outside_jobs,
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=lambda _: log.info(
            "whisperx_listening", host=args.host, port=args.port, concurrency=args.concurrency
        ),
    )


if __name__ == "__main__":
    main()
