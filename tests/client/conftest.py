"""The whole devnet stack as real processes (gateway, validator, lb, simulated miners and
WhisperX, a real redis-server) at the shipped defaults, once for the client tests; the
client and its CLI talk to it over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet.audio import synthesize
from devnet.stack import Ports, Stack

#: The audio-client console script of this interpreter's environment (make install puts
#: it there with the client package).
CLI = str(Path(sys.executable).with_name("audio-client"))
#: The environment of each CLI run: the client's own variables only where a test sets them.
BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("AUDIO_API_URL", "AUDIO_API_KEY")}


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("client-stack"), Ports.free())
    running.start(timeout=90)
    yield running
    running.stop()


@pytest.fixture
def url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway}"


@pytest.fixture
def validator_stopped(stack: Stack) -> Iterator[None]:
    """No validator: new tasks stay pending until cancelled. Started again afterwards."""
    stack.kill("validator", signal.SIGTERM)
    yield
    stack.spawn(stack.services["validator"])
    stack.wait_ready(stack.services["validator"], 60)


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    """A WAV the simulated miners transcribe as "hello from the subnet"."""
    path = tmp_path / "audio.wav"
    path.write_bytes(synthesize("hello from the subnet"))
    return path


@pytest.fixture
def unreadable(tmp_path: Path) -> Path:
    """A WAV without the embedded transcript: every simulated miner declines it (422), the
    simulated WhisperX too, so its task fails after its attempts and says why."""
    path = tmp_path / "tone.wav"
    path.write_bytes(synthesize(""))
    return path


def cli(
    url: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``audio-client --url URL ARGS`` as a user would (stdin and stdout no terminal)."""
    return subprocess.run(
        [CLI, "--url", url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env={**BASE_ENV, **(env or {})},
    )
