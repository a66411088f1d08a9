"""The gateway as a real process: the seed README's curl examples, start-up failures, and
several workers under gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from devnet.audio import synthesize
from devnet.redis_server import free_port
from shared.store import TaskStore
from shared.tasks import Status

from .conftest import REPO, SEED_STATUS_KEYS, SEED_SUBMISSION_KEYS, gateway_process

# The seed README's curl examples, verbatim: first the per-endpoint examples, then the
# "Test with curl" block (whose last command says to replace {task_id} with a real id).
SEED_CURL = {
    "transcription": """curl -X POST "http://localhost:8000/api/v1/transcription" \\
  -F "audio_file=@audio.wav" \\
  -F "source_language=en" \\
  -F "priority=normal\"""",
    "tts": """curl -X POST "http://localhost:8000/api/v1/tts" \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Hello, this is a test for TTS conversion.",
    "source_language": "en",
    "priority": "normal"
  }'""",
    "summarization": """curl -X POST "http://localhost:8000/api/v1/summarization" \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Long article text here...",
    "source_language": "en",
    "priority": "normal"
  }'""",
    "test_health": "curl http://localhost:8000/api/v1/health",
    "test_transcription": """curl -X POST "http://localhost:8000/api/v1/transcription" \\
  -F "audio_file=@audio.wav" \\
  -F "source_language=en" \\
  -F "priority=normal\"""",
    "test_tts": """curl -X POST "http://localhost:8000/api/v1/tts" \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Hello world",
    "source_language": "en",
    "priority": "normal"
  }'""",
    "test_summarization": """curl -X POST "http://localhost:8000/api/v1/summarization" \\
  -H "Content-Type: application/json" \\
  -d '{
    "text": "Long article text...",
    "source_language": "en",
    "priority": "normal"
  }'""",
    "test_status": 'curl "http://localhost:8000/api/v1/tasks/{task_id}"',
}

SEED_ANSWERS = {
    "transcription": ("Transcription task submitted successfully", 60),
    "tts": ("TTS task submitted successfully", 45),
    "summarization": ("Summarization task submitted successfully", 30),
}
SEED_RESULT_KEYS = {
    "output_data",
    "model_used",
    "processing_time",
    "accuracy_score",
    "speed_score",
    "miner_uid",
}


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _curl(command: str, port: int, cwd: Path) -> dict:
    command = command.replace("localhost:8000", f"localhost:{port}")
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed")
async def test_seed_readme_curl_examples(redis, redis_url, tmp_path):
    (tmp_path / "audio.wav").write_bytes(synthesize("hello from the seed readme", 1.0))
    port = free_port()
    env = {"REDIS_URL": redis_url, "PORT": str(port), "ENVIRONMENT": "test"}
    with gateway_process(env, cwd=tmp_path) as (_, status):
        assert status == 200

        health = _curl(SEED_CURL["test_health"], port, tmp_path)
        assert {"status", "redis", "queue", "network"} <= set(health)
        assert health["status"] == "healthy"

        ids = {}
        for name in ("transcription", "tts", "summarization"):
            for key in (name, f"test_{name}"):
                answer = _curl(SEED_CURL[key], port, tmp_path)
                assert set(answer) == SEED_SUBMISSION_KEYS, key
                message, eta = SEED_ANSWERS[name]
                assert (answer["status"], answer["message"]) == ("pending", message)
                assert (answer["task_type"], answer["source_language"]) == (name, "en")
                assert answer["estimated_completion_time"] == eta
                ids[key] = answer["task_id"]
        assert len(set(ids.values())) == 6

        status_cmd = SEED_CURL["test_status"].replace("{task_id}", ids["test_transcription"])
        pending = _curl(status_cmd, port, tmp_path)
        assert SEED_STATUS_KEYS <= set(pending) and pending["status"] == "pending"

        store = TaskStore(redis, 60)
        task_id = ids["test_transcription"]
        await store.transition(task_id, Status.PROCESSING, expect=[Status.PENDING])
        seed_result = {
            "model_used": "openai/whisper-tiny",
            "processing_time": 1.23,
            "accuracy_score": 0.95,
            "speed_score": 0.89,
            "miner_uid": 48,
        }
        await store.transition(
            task_id,
            Status.COMPLETED,
            expect=[Status.PROCESSING],
            fields={"result": json.dumps(seed_result)},
            output=b"hello from the seed readme",
        )
        done = _curl(status_cmd, port, tmp_path)
        assert SEED_STATUS_KEYS <= set(done) and done["status"] == "completed"
        assert SEED_RESULT_KEYS <= set(done["result"])
        assert {k: done["result"][k] for k in seed_result} == seed_result
        assert done["result"]["output_text"] == "hello from the seed readme"


def test_bad_setting_exits_2_naming_the_variable(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "TTS_MAX_CHARS": "many"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TTS_MAX_CHARS" in lines[0]


def test_process_starts_with_redis_down(tmp_path):
    port = free_port()
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "PORT": str(port)}
    with gateway_process(env, cwd=tmp_path) as (_, status):
        assert status == 503
        url = f"http://127.0.0.1:{port}/api/v1/health"
        assert _get(url)[1]["error"]["code"] == "redis_unavailable"


def test_gunicorn_workers_share_metrics(redis_url, tmp_path):
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:services.gateway.gunicorn_conf",
        "services.gateway.app:gunicorn_app",
    ]
    base = f"http://127.0.0.1:{port}"
    with gateway_process(env, args=args) as (proc, status):
        assert status == 200
        # Both workers have built their app (each writes its gauges' file on creation); a
        # TERM sent to a worker still booting would wait out gunicorn's graceful timeout.
        while len(list(tmp_path.glob("gauge_mostrecent_*.db"))) < 2:
            assert proc.poll() is None
            time.sleep(0.05)
        assert len(psutil.Process(proc.pid).children()) == 2
        for _ in range(6):
            request = urllib.request.Request(
                f"{base}/api/v1/tts",
                data=b'{"text": "hi"}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as resp:
                assert resp.status == 202
        # Whichever worker answers the scrape, it reports every worker's submissions.
        for _ in range(4):
            with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            line = next(x for x in text.splitlines() if x.startswith("gateway_submissions_total{"))
            assert float(line.rsplit(" ", 1)[1]) == 6
