"""The audio_client library against the devnet stack: typed results, errors carrying the
API's codes, waiting over the events stream (through breaks, with Last-Event-ID) and by
polling where the stream is refused."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from audio_client import (
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    EventsUnavailable,
    NotFound,
    WaitTimeout,
)

from devnet.audio import embedded_text
from devnet.redis_server import free_port
from devnet.stack import Stack
from tests.client.proxy import Proxy

ROOT = Path(__file__).resolve().parents[2]


def test_each_kind_of_task_to_its_typed_result(url: str, speech: Path) -> None:
    with Client(url) as client:
        sub = client.transcribe(speech, language="en", priority="urgent")
        assert (sub.status, sub.task_type, sub.source_language) == (
            "pending",
            "transcription",
            "en",
        )
        task = client.wait(sub.task_id, timeout=60)
        assert (task.status, task.priority, task.final) == ("completed", "urgent", True)
        assert task.result is not None
        assert task.result.output_text == "hello from the subnet"
        assert task.result.output == b"hello from the subnet"
        assert task.result.miner_uid is not None
        assert 0 <= task.result.accuracy_score <= 1

        spoken = client.wait(client.tts("Hello, this is a test.").task_id, timeout=60)
        assert embedded_text(client.output(spoken.task_id)) == "Hello, this is a test."
        assert spoken.result.output == client.output(spoken.task_id)

        summary = client.wait(client.summarize("Long article text here...").task_id, timeout=60)
        assert summary.status == "completed"
        assert summary.result.output_text


def test_get_and_list_pages(url: str) -> None:
    with Client(url) as client:
        ids = [client.summarize(f"page test {i}").task_id for i in range(3)]
        for task_id in ids:
            client.wait(task_id, timeout=60)
        first = client.list(limit=2)
        assert len(first.tasks) == 2 and first.next_cursor is not None
        second = client.list(limit=2, cursor=first.next_cursor)
        newest = [t.task_id for t in first.tasks + second.tasks][:3]
        assert newest == ids[::-1]
        assert client.get(ids[0]).task_id == ids[0]
        assert first.tasks[0].result is not None and first.tasks[0].result.output_data is None


def test_errors_carry_the_api_code(url: str, speech: Path) -> None:
    with Client(url) as client:
        with pytest.raises(BadRequest) as bad:
            client.transcribe(speech, language="xx")
        assert (bad.value.status, bad.value.code, bad.value.field) == (
            400,
            "invalid_language",
            "source_language",
        )
        with pytest.raises(BadRequest) as blank:
            client.tts("   ")
        assert blank.value.code == "blank_text"
        with pytest.raises(NotFound) as missing:
            client.get("6f1c4f0e-2f7b-4e0c-9c9e-6a8f2b1d3c4e")
        assert missing.value.code == "task_not_found"
        assert missing.value.request_id
    with Client(f"http://127.0.0.1:{free_port()}") as nobody, pytest.raises(ConnectionFailed):
        nobody.list()


def test_wait_gives_up_after_its_timeout(url: str, validator_stopped: None) -> None:
    with Client(url) as client:
        task_id = client.tts("nobody will speak this").task_id
        with pytest.raises(WaitTimeout) as timeout:
            client.wait(task_id, timeout=1)
        assert timeout.value.task.status == "pending"


def test_polls_where_the_events_stream_is_refused(stack: Stack, speech: Path) -> None:
    with Proxy(stack.ports.gateway, refuse_events=True) as proxy, Client(proxy.url) as client:
        with pytest.raises(EventsUnavailable):
            next(client.events(client.transcribe(speech).task_id))
        seen = []
        task = client.wait(client.transcribe(speech).task_id, timeout=60, on_update=seen.append)
    assert task.status == "completed"
    assert seen[-1] == task
    # Refused twice (events, then wait's own try), and polled with ?wait= instead.
    assert len(proxy.events_heads()) == 2
    assert any("?wait=" in head.split("\r\n")[0] for head in proxy.heads)


def _cancel_when(condition, client: Client, task_id: str) -> threading.Thread:
    def run() -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        client.cancel(task_id)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_events_follow_a_task_to_cancelled(url: str, validator_stopped: None) -> None:
    with Client(url) as client, Client(url) as other:
        task_id = client.tts("to be cancelled").task_id
        states: list[str] = []
        canceller = _cancel_when(lambda: states, other, task_id)
        for task in client.events(task_id, timeout=60):
            states.append(task.status)
        canceller.join()
        assert states == ["pending", "cancelled"]
        with pytest.raises(Conflict):
            client.cancel(task_id)


def test_wait_reconnects_with_last_event_id(stack: Stack, validator_stopped: None) -> None:
    """The first stream is cut after its first event: the client reconnects with that
    event's id as Last-Event-ID and sees the task to its end on the second stream."""
    url = f"http://127.0.0.1:{stack.ports.gateway}"
    with Proxy(stack.ports.gateway, cut_streams=1) as proxy, Client(url) as direct:
        task_id = direct.tts("cut me off").task_id
        canceller = _cancel_when(lambda: len(proxy.events_heads()) == 2, direct, task_id)
        with Client(proxy.url) as client:
            task = client.wait(task_id, timeout=60)
        canceller.join()
    assert task.status == "cancelled"
    first_id = re.search(r"^id: *(\S+)", proxy.cut_events[0], re.MULTILINE).group(1)
    first, second = proxy.events_heads()
    assert "last-event-id" not in first.lower()
    assert f"last-event-id: {first_id.lower()}\r\n" in second.lower()
    # It stayed on the stream: no poll.
    assert not any("?wait=" in head.split("\r\n")[0] for head in proxy.heads)


def test_the_package_needs_nothing_of_the_server() -> None:
    """``pip install ./clients/python`` brings httpx and httpx-sse only, and the library
    and CLI import none of the server's packages."""
    project = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())
    names = {re.split(r"[<>=\[; ]", dep)[0] for dep in project["project"]["dependencies"]}
    assert names == {"httpx", "httpx-sse"}
    code = "import sys, audio_client.cli; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    top = {name.split(".")[0] for name in run.stdout.split()}
    server = {"shared", "services", "devnet", "aiohttp", "redis", "marshmallow", "bittensor"}
    assert top & server == set()
