"""The seed README's "Test with Python" example, run unchanged against the stack.

The example names http://localhost:8000, the gateway's default address, so this stack's
gateway listens on port 8000 (every other service on a free port) and the example runs as
a script of its own, with requests, in a directory holding the ``audio.wav`` it opens.
"""

from __future__ import annotations

import ast
import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from audio_client import Client

from devnet.audio import synthesize
from devnet.stack import Ports, Stack

#: Verbatim from the seed README (section "Testing", "Test with Python"), trailing spaces
#: included.
SEED_PYTHON_EXAMPLE = """\
import requests

# Test transcription
with open('audio.wav', 'rb') as f:
    files = {'audio_file': ('audio.wav', f, 'audio/wav')}
    data = {'source_language': 'en', 'priority': 'normal'}
    response = requests.post("http://localhost:8000/api/v1/transcription", 
                           files=files, data=data)
    task_id = response.json()["task_id"]

# Test TTS
tts_data = {
    "text": "Hello, this is a test.",
    "source_language": "en",
    "priority": "normal"
}
response = requests.post("http://localhost:8000/api/v1/tts", json=tts_data)
task_id = response.json()["task_id"]

# Test summarization
summarization_data = {
    "text": "Long article text here...",
    "source_language": "en",
    "priority": "normal"
}
response = requests.post("http://localhost:8000/api/v1/summarization", 
                       json=summarization_data)
task_id = response.json()["task_id"]

# Check status
status_response = requests.get(f"http://localhost:8000/api/v1/tasks/{task_id}")
print(f"Task status: {status_response.json()}")
"""  # noqa: W291


def _port_in_use(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=1):
            return True
    except OSError:
        return False


def test_seed_readme_python_example(tmp_path: Path) -> None:
    if _port_in_use(8000):
        pytest.skip("port 8000 is taken (a `make run`?): the seed example names localhost:8000")
    ports = dataclasses.replace(Ports.free(), gateway=8000)
    stack = Stack(tmp_path / "var", ports)
    stack.start(timeout=90)
    try:
        (tmp_path / "audio.wav").write_bytes(synthesize("hello from the subnet"))
        (tmp_path / "seed_example.py").write_text(SEED_PYTHON_EXAMPLE)
        run = subprocess.run(
            [sys.executable, "seed_example.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        printed, _, rest = run.stdout.partition("\n")
        assert rest == ""
        assert printed.startswith("Task status: {")
        status = ast.literal_eval(printed.removeprefix("Task status: "))
        assert status["task_type"] == "summarization"
        assert status["status"] in ("pending", "processing", "completed")
        # All three submissions were accepted and each completes.
        with Client("http://localhost:8000") as client:
            tasks = client.list(limit=10).tasks
            assert sorted(t.task_type for t in tasks) == ["summarization", "transcription", "tts"]
            final = {t.task_type: client.wait(t.task_id, timeout=60) for t in tasks}
        assert {kind: task.status for kind, task in final.items()} == dict.fromkeys(
            final, "completed"
        )
        assert final["transcription"].result.output_text == "hello from the subnet"
    finally:
        stack.stop()
