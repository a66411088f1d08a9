"""The simulated WhisperX instance: its interface, formats, timing model and concurrency."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

import aiohttp
import pytest

from devnet import whisperx
from devnet.audio import speech_duration, synthesize
from devnet.redis_server import free_port

SPOKEN = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"


def form(audio: bytes, **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field("file", audio, filename="audio.wav", content_type="audio/wav")
    return data


@pytest.fixture
async def instance(aiohttp_client):
    return await aiohttp_client(whisperx.create_app())


async def test_health_reports_active_jobs(instance):
    response = await instance.get("/health")
    assert await response.json() == {"status": "ok", "active_jobs": 0}


async def test_json_is_the_embedded_text(instance):
    response = await instance.post("/v1/audio/transcriptions", data=form(synthesize(SPOKEN)))
    assert response.status == 200
    assert await response.json() == {"text": SPOKEN}


async def test_uploads_larger_than_a_mebibyte_are_accepted(instance):
    audio = synthesize("a long recording", 100.0)
    assert len(audio) > 3_000_000
    data = form(audio, response_format="verbose_json")
    body = await (await instance.post("/v1/audio/transcriptions", data=data)).json()
    assert body["text"] == "a long recording" and body["duration"] == pytest.approx(100.0)


async def test_audio_it_cannot_read_gets_422_never_a_made_up_transcript(instance):
    """No speech model: a WAV without the embedded text (real speech) and a file that is not
    WAV (an MP3) are refused as a FastAPI WhisperX refuses what it cannot process."""
    cases = {
        "no embedded text": (synthesize(""), whisperx.NO_TRANSCRIPT),
        "empty embedded text": (_with_empty_comment(synthesize("")), whisperx.NO_TRANSCRIPT),
        "not wav": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" * 500, whisperx.NOT_WAV),
    }
    for name, (audio, detail) in cases.items():
        for path in ("/v1/audio/transcriptions", "/transcribe"):
            response = await instance.post(path, data=form(audio, response_format="text"))
            assert response.status == 422, name
            assert response.content_type == "application/json", name
            assert await response.json() == {"detail": detail}, name
    health = await (await instance.get("/health")).json()
    assert health["active_jobs"] == 0


def _with_empty_comment(wav: bytes) -> bytes:
    """A WAV whose INFO/ICMT chunk holds an empty string."""
    info = b"INFO" + b"ICMT" + (2).to_bytes(4, "little") + b"\0\0"
    body = wav[8:] + b"LIST" + len(info).to_bytes(4, "little") + info
    return b"RIFF" + len(body).to_bytes(4, "little") + body


async def test_text_format(instance):
    data = form(synthesize(SPOKEN), response_format="text")
    response = await instance.post("/v1/audio/transcriptions", data=data)
    assert response.content_type == "text/plain"
    assert await response.text() == SPOKEN + "\n"


async def test_verbose_json_has_timed_segments(instance):
    audio = synthesize(SPOKEN)
    data = form(audio, response_format="verbose_json", language="fr")
    body = await (await instance.post("/v1/audio/transcriptions", data=data)).json()
    assert body["text"] == SPOKEN and body["language"] == "fr" and body["task"] == "transcribe"
    assert body["duration"] == pytest.approx(speech_duration(SPOKEN), abs=0.01)
    segments = body["segments"]
    assert " ".join(s["text"] for s in segments) == SPOKEN
    assert segments[0]["start"] == 0 and segments[-1]["end"] == pytest.approx(body["duration"])
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(segments))
    assert all("speaker" not in s for s in segments)


async def test_diarization_labels_speakers(instance):
    data = form(
        synthesize(SPOKEN * 2),
        response_format="verbose_json",
        enable_diarization="true",
        min_speakers="2",
        max_speakers="2",
    )
    body = await (await instance.post("/v1/audio/transcriptions", data=data)).json()
    assert {s["speaker"] for s in body["segments"]} == {"SPEAKER_00", "SPEAKER_01"}


async def test_srt_and_vtt(instance):
    audio = synthesize(SPOKEN)
    srt = await (
        await instance.post("/v1/audio/transcriptions", data=form(audio, response_format="srt"))
    ).text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:04,200\none two three")
    assert "\n\n2\n00:00:04,200 --> 00:00:04,900\nthirteen fourteen\n" in srt
    vtt = await (
        await instance.post("/v1/audio/transcriptions", data=form(audio, response_format="vtt"))
    ).text()
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:04.200\none two three")


async def test_legacy_path_is_served_too(instance):
    response = await instance.post("/transcribe", data=form(synthesize("legacy path")))
    assert await response.json() == {"text": "legacy path"}


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"response_format": "mp3"}, "response_format"),
        ({"enable_diarization": "true", "min_speakers": "two"}, "min_speakers"),
    ],
)
async def test_bad_fields_are_422(instance, fields, detail):
    response = await instance.post("/v1/audio/transcriptions", data=form(b"RIFF", **fields))
    assert response.status == 422
    assert detail in (await response.json())["detail"]


async def test_missing_file_is_422(instance):
    data = aiohttp.FormData({"response_format": "json"})
    data.add_field("other", b"x", filename="x.bin")
    response = await instance.post("/v1/audio/transcriptions", data=data)
    assert response.status == 422 and "file" in (await response.json())["detail"]


async def _finish_order(client, audios: list[bytes]) -> list[int]:
    """Submit jobs one after another (each running before the next), return finish order."""
    finished: list[int] = []

    async def run(index: int) -> None:
        response = await client.post("/v1/audio/transcriptions", data=form(audios[index]))
        assert response.status == 200
        finished.append(index)

    tasks = []
    for index in range(len(audios)):
        tasks.append(asyncio.create_task(run(index)))
        for _ in range(2000):
            if (await (await client.get("/health")).json())["active_jobs"] == index + 1:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"job {index} never became active")
    await asyncio.gather(*tasks)
    return finished


async def test_time_is_proportional_to_duration(aiohttp_client):
    client = await aiohttp_client(whisperx.create_app(concurrency=2, seconds_per_audio_second=0.2))
    # A 4 s file started first still finishes after a 0.5 s file running beside it.
    order = await _finish_order(client, [synthesize("long", 4.0), synthesize("short", 0.5)])
    assert order == [1, 0]


async def test_concurrency_limit_queues_jobs_and_counts_them_active(aiohttp_client):
    client = await aiohttp_client(whisperx.create_app(concurrency=1, seconds_per_audio_second=0.2))
    # With one slot, the short job waits for the long one (and counts as active meanwhile).
    order = await _finish_order(client, [synthesize("long", 4.0), synthesize("short", 0.5)])
    assert order == [0, 1]
    assert (await (await client.get("/health")).json())["active_jobs"] == 0


async def test_outside_jobs_hold_slots_and_show_in_health(aiohttp_client):
    app = whisperx.create_app(concurrency=2, outside_jobs=1, seconds_per_audio_second=0.2)
    client = await aiohttp_client(app)
    assert (await (await client.get("/health")).json())["active_jobs"] == 1
    # One slot is left: a second job queues behind the first, and both count as active.
    jobs = [
        asyncio.create_task(
            client.post("/v1/audio/transcriptions", data=form(synthesize("x", 1.0)))
        )
        for _ in range(2)
    ]
    for _ in range(2000):
        if (await (await client.get("/health")).json())["active_jobs"] == 3:
            break
        await asyncio.sleep(0.005)
    else:
        raise AssertionError("the two jobs never counted as active beside the outside one")
    assert app[whisperx.JOBS].slots.locked()
    for response in await asyncio.gather(*jobs):
        assert response.status == 200
    assert (await (await client.get("/health")).json())["active_jobs"] == 1


@pytest.mark.parametrize("outside", [-1, 2])
def test_outside_jobs_must_leave_a_slot(outside):
    with pytest.raises(ValueError, match="outside_jobs"):
        whisperx.create_app(concurrency=2, outside_jobs=outside)


async def test_discard_mode_counts_bytes_without_parsing(aiohttp_client):
    client = await aiohttp_client(whisperx.create_app(discard_audio=True))
    response = await client.post("/v1/audio/transcriptions", data=b"\0" * 3_000_000)
    assert await response.json() == {"bytes_received": 3_000_000}


async def test_command_line_serves_health():
    port = free_port()
    command = [sys.executable, "-m", "devnet.whisperx", "--port", str(port), "--concurrency", "2"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as response:
                        assert await response.json() == {"status": "ok", "active_jobs": 0}
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "devnet.whisperx did not start"
                    await asyncio.sleep(0.05)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
