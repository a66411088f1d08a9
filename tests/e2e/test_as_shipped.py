"""The local stack as ``make run`` starts it (devnet.stack.Stack, shipped defaults), driven
with curl as a newcomer drives it: every curl example of the seed README, ten times, and
their own recordings (real speech from espeak-ng, as WAV and as MP3)."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from devnet import audio, whisperx
from devnet.stack import MINER_PROFILES, Ports, Stack

RUNS = 10
PATIENCE = 60.0  # seconds one run may take; at the defaults each task needs about one
SPOKEN = "hello from the subnet"  # the README's audio.wav
PROFILE_OF_UID = {uid: profile for uid, (profile, _) in enumerate(MINER_PROFILES, start=1)}
JSON = ["-H", "Content-Type: application/json", "-d"]

#: The seed README's task submissions (API section, "Test with curl" and the Python ones,
#: which send the same requests), as curl arguments; {api} is http://<gateway>/api/v1.
SEED_EXAMPLES: dict[str, list[str]] = {
    "transcription audio.wav": [
        "-X", "POST", "{api}/transcription",
        "-F", "audio_file=@audio.wav", "-F", "source_language=en", "-F", "priority=normal",
    ],
    "tts 'Hello, this is a test for TTS conversion.'": [
        "-X", "POST", "{api}/tts", *JSON,
        '{"text": "Hello, this is a test for TTS conversion.", "source_language": "en",'
        ' "priority": "normal"}',
    ],
    "summarization 'Long article text here...'": [
        "-X", "POST", "{api}/summarization", *JSON,
        '{"text": "Long article text here...", "source_language": "en", "priority": "normal"}',
    ],
    "tts 'Hello world'": [
        "-X", "POST", "{api}/tts", *JSON,
        '{"text": "Hello world", "source_language": "en", "priority": "normal"}',
    ],
    "summarization 'Long article text...'": [
        "-X", "POST", "{api}/summarization", *JSON,
        '{"text": "Long article text...", "source_language": "en", "priority": "normal"}',
    ],
    "tts 'Hello, this is a test.' (Python example)": [
        "-X", "POST", "{api}/tts", *JSON,
        '{"text": "Hello, this is a test.", "source_language": "en", "priority": "normal"}',
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack exactly as ``python -m devnet`` builds it, on free ports: no setting
    changed, so every figure below is one a ``make run`` user gets."""
    running = Stack(tmp_path_factory.mktemp("shipped"), Ports.free())
    running.start(timeout=90)
    yield running
    running.stop()


async def curl(*args: str, cwd: Path | None = None) -> tuple[int, Any]:
    """Run curl as a user would (plus -sS and a status line); (HTTP status, JSON body)."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-w", "\n%{http_code}", *args,
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    body, _, status = out.decode().rpartition("\n")
    return int(status), json.loads(body)


async def submit_and_wait(
    api: str, args: list[str], cwd: Path, deadline: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit one example, then poll ``GET /tasks/{task_id}`` (the seed's status check)."""
    status, accepted = await curl(*(a.replace("{api}", api) for a in args), cwd=cwd)
    assert status == 202, accepted
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, view = await curl(f"{api}/tasks/{accepted['task_id']}")
        if view["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.25)
    return accepted, view


def api_of(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway}/api/v1"


async def test_every_seed_example_completes_with_a_result_and_scores_ten_times(
    shipped: Stack, tmp_path: Path
):
    api = api_of(shipped)
    (tmp_path / "audio.wav").write_bytes(audio.synthesize(SPOKEN))
    outcomes: dict[str, list[dict[str, Any]]] = {name: [] for name in SEED_EXAMPLES}
    started = time.monotonic()
    for _ in range(RUNS):
        status, health = await curl(f"{api}/health")
        assert status == 200 and health["status"] == "healthy", health
        deadline = time.monotonic() + PATIENCE
        views = await asyncio.gather(
            *(submit_and_wait(api, args, tmp_path, deadline) for args in SEED_EXAMPLES.values())
        )
        for name, (accepted, view) in zip(SEED_EXAMPLES, views, strict=True):
            assert accepted["status"] == "pending" and accepted["task_type"] in name
            outcomes[name].append(view)
    wall = time.monotonic() - started
    for name, views in outcomes.items():
        results = [v["result"] or {} for v in views]
        accuracy = [r.get("accuracy_score") for r in results]
        winners = Counter(PROFILE_OF_UID.get(r.get("miner_uid"), "none") for r in results)
        print(
            f"\nseed-example {name}: completed={sum(v['status'] == 'completed' for v in views)}"
            f"/{RUNS} accuracy_min={min(a or 0 for a in accuracy)}"
            f" accuracy_median={statistics.median(a or 0 for a in accuracy)}"
            f" attempts={dict(Counter(v['attempts'] for v in views))} winners={dict(winners)}"
        )
    print(f"seed-examples: runs={RUNS} tasks={RUNS * len(SEED_EXAMPLES)} wall_s={wall:.1f}")
    for name, views in outcomes.items():
        for view in views:
            assert view["status"] == "completed", (name, view)
            result = view["result"]
            assert result["output_data"] and result["model_used"], (name, view)
            assert 0 < result["accuracy_score"] <= 1 and result["accuracy_reason"] is None
            assert 0 < result["speed_score"] <= 1 and result["miner_uid"] in PROFILE_OF_UID
        if name.startswith("transcription"):
            assert {v["result"]["output_text"] for v in views} == {SPOKEN}
        if name.startswith("summarization"):
            # Too short to summarize: the summary is the text (a noisy miner may win with
            # most of it, scored below 1), never junk.
            words = set(json.loads(SEED_EXAMPLES[name][-1])["text"].lower().split())
            for view in views:
                kept = words & set(view["result"]["output_text"].lower().split())
                assert len(kept) * 2 > len(words), view


def espeak_recording(path: Path, text: str) -> tuple[bytes, str]:
    """Real speech: espeak-ng's WAV (``make test`` installs it where apt-get exists)."""
    if shutil.which("espeak-ng") is None:
        # Without espeak-ng (no apt-get here), a WAV without the embedded transcript is the
        # same case for the devnet: audio it has no model to read.
        return audio.synthesize("", audio.speech_duration(text)), "devnet.audio (no espeak-ng)"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(path), text], check=True)
    return path.read_bytes(), "espeak-ng"


def to_mp3(wav: bytes) -> bytes:
    """The recording as MP3, encoded with PyAV's bundled FFmpeg (libmp3lame)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(out, "w", format="mp3") as dst:
        rate = src.streams.audio[0].rate
        stream = dst.add_stream("libmp3lame", rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format="s16p", layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for mono in resampler.resample(frame):
                for packet in stream.encode(mono):
                    dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


async def test_a_real_recording_is_never_given_a_made_up_transcript(shipped: Stack, tmp_path: Path):
    """The devnet has no speech model: the simulated WhisperX answers 422 and every
    simulated miner declines (422), so the task fails and says why, rather than complete
    with a fixed sentence scored 1.0. (A real miner's answer would complete it with
    accuracy_score null: tests/validator/test_unknown_accuracy.py.)"""
    api = api_of(shipped)
    text = "this recording was spoken by a real speech synthesizer"
    wav, source = espeak_recording(tmp_path / "speech.wav", text)
    assert audio.embedded_text(wav) is None
    (tmp_path / "speech.mp3").write_bytes(to_mp3(wav))
    expected = {
        "speech.wav": whisperx.NO_TRANSCRIPT,
        "speech.mp3": whisperx.NOT_WAV,
    }
    deadline = time.monotonic() + PATIENCE
    for name, detail in expected.items():
        args = ["-X", "POST", "{api}/transcription", "-F", f"audio_file=@{name}",
                "-F", "source_language=en", "-F", "priority=normal"]  # fmt: skip
        _, view = await submit_and_wait(api, args, tmp_path, deadline)
        print(
            f"\nown-recording {name} ({source}): status={view['status']}"
            f" accuracy_score={view['accuracy_score']} result={view['result']}"
            f" error={view['error']!r}"
        )
        assert view["status"] == "failed" and view["result"] is None, view
        assert view["accuracy_score"] is None
        error = view["error"]
        assert error.startswith("no usable answer from miners after 3 attempts (http_422 x")
        assert error.endswith(f"); the WhisperX pipeline answered 422: {detail}")
