"""audio-client run as a subprocess against the devnet stack: each command, each exit
status (0 completed, 1 failed or cancelled, 2 usage or connection error), --json, and the
API key from --api-key or AUDIO_API_KEY."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from audio_client import Client

from devnet.audio import embedded_text
from devnet.redis_server import free_port
from devnet.stack import Stack
from tests.client.conftest import BASE_ENV, CLI, cli


def test_transcribe_wait_prints_the_transcript(url: str, speech: Path) -> None:
    run = cli(url, "transcribe", str(speech), "--wait")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello from the subnet\n"
    # Not a terminal: one progress line per new state, on stderr.
    assert " completed attempts=1 elapsed=" in run.stderr


def test_wait_on_a_terminal_redraws_one_progress_line(url: str, speech: Path) -> None:
    controller, terminal = pty.openpty()
    drawn = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's last holder closed it
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    run = subprocess.run(
        [CLI, "--url", url, "transcribe", str(speech), "--wait"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
        env=BASE_ENV,
        timeout=90,
    )
    os.close(terminal)
    reader.join(10)
    os.close(controller)
    assert run.returncode == 0
    assert run.stdout == "hello from the subnet\n"
    screen = drawn.decode()
    # Redrawn in place (carriage return, erase line), never one line per state.
    line = r"\r\x1b\[K[0-9a-f-]{36} (waiting|pending|processing|completed) attempts=\d+ elapsed="
    assert re.search(line, screen), screen
    assert not re.search(r"elapsed=[\d.]+s\r?\n", screen), screen
    assert " completed: miner " in screen


def test_tts_writes_the_wav(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    run = cli(url, "tts", "Hello world", "-o", str(out))
    assert run.returncode == 0, run.stderr
    # The simulated TTS miner's WAV carries its text (devnet.audio).
    assert embedded_text(out.read_bytes()) == "Hello world"
    assert f"wrote {out} ({out.stat().st_size} bytes)" in run.stderr


def test_summarize_stdin_json(url: str) -> None:
    run = cli(url, "summarize", "-", "--wait", "--json", stdin="Long article text here...")
    assert run.returncode == 0, run.stderr
    task = json.loads(run.stdout)
    assert (task["status"], task["task_type"]) == ("completed", "summarization")
    assert task["result"]["output_text"] == "Long article text here..."


def test_submit_then_status_watch_and_list(url: str, tmp_path: Path) -> None:
    text = tmp_path / "article.txt"
    text.write_text("A short article for the summarizer.")
    run = cli(url, "summarize", str(text), "--priority", "high")
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.strip()
    assert "Summarization task submitted successfully" in run.stderr

    watched = cli(url, "watch", task_id)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout == "A short article for the summarizer.\n"

    status = cli(url, "status", task_id)
    assert status.returncode == 0, status.stderr
    assert f"task_id      {task_id}\nstatus       completed\n" in status.stdout
    assert "type         summarization (en, high priority)" in status.stdout

    listed = cli(url, "list", "--status", "completed", "--limit", "100", "--json")
    assert listed.returncode == 0, listed.stderr
    assert task_id in [t["task_id"] for t in json.loads(listed.stdout)["tasks"]]
    table = cli(url, "list", "--limit", "100")
    assert table.stdout.startswith("TASK_ID\tSTATUS\tTYPE\tPRIORITY\tATTEMPTS\tCREATED_AT\n")
    assert f"{task_id}\tcompleted\tsummarization\thigh\t1\t" in table.stdout


def test_a_failed_task_exits_1(url: str, unreadable: Path) -> None:
    run = cli(url, "transcribe", str(unreadable), "--wait", "--json")
    assert run.returncode == 1, run.stderr
    task = json.loads(run.stdout)
    assert task["status"] == "failed"
    assert "WhisperX" in task["error"]
    assert cli(url, "status", task["task_id"]).returncode == 1
    watched = cli(url, "watch", task["task_id"])
    assert watched.returncode == 1
    assert f"{task['task_id']} failed after 3 attempt(s): " in watched.stderr


def test_usage_errors_exit_2(url: str, speech: Path) -> None:
    for args in ([], ["tts"], ["transcribe", str(speech), "--priority", "soon"], ["bogus"]):
        run = subprocess.run([CLI, *args], capture_output=True, text=True, env=BASE_ENV)
        assert run.returncode == 2, args
        assert "usage: audio-client" in run.stderr
    missing = cli(url, "transcribe", str(speech.with_name("missing.wav")))
    assert missing.returncode == 2
    assert "No such file or directory" in missing.stderr


def test_requests_the_api_refuses_exit_2_with_its_code(url: str, speech: Path) -> None:
    run = cli(url, "transcribe", str(speech), "--language", "xx", "--json")
    assert run.returncode == 2
    error = json.loads(run.stdout)["error"]
    assert (error["status"], error["code"], error["field"]) == (
        400,
        "invalid_language",
        "source_language",
    )
    unknown = cli(url, "status", "6f1c4f0e-2f7b-4e0c-9c9e-6a8f2b1d3c4e")
    assert unknown.returncode == 2
    assert "error: 404 task_not_found: " in unknown.stderr


def test_connection_refused_exits_2() -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    run = cli(nobody, "list", "--json")
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"]["code"] == "connection_failed"
    assert "Connection refused" in run.stderr


def test_api_key_from_option_or_environment(stack: Stack, url: str) -> None:
    key = subprocess.run(
        [sys.executable, "-m", "services.gateway", "keys", "create", "--name", "cli test"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "REDIS_URL": stack.redis_url},
    ).stdout.strip()
    submitted = cli(url, "tts", "keyed", env={"AUDIO_API_KEY": key})
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()

    def listed(*args: str, env: dict[str, str] | None = None) -> list[str]:
        run = cli(url, "list", "--limit", "100", "--json", *args, env=env)
        assert run.returncode == 0, run.stderr
        return [t["task_id"] for t in json.loads(run.stdout)["tasks"]]

    # A task belongs to its key: listed with the key, not to the anonymous caller.
    assert task_id in listed("--api-key", key)
    assert task_id not in listed()
    # The option wins over the variable.
    assert (
        cli(url, "status", task_id, "--api-key", key, env={"AUDIO_API_KEY": "ak_x_y"}).returncode
        == 0
    )
    bad = cli(url, "list", env={"AUDIO_API_KEY": "ak_00000000_nope"})
    assert bad.returncode == 2
    assert "401 invalid_api_key" in bad.stderr
    # The URL from AUDIO_API_URL when --url is not given.
    from_env = subprocess.run(
        [CLI, "status", task_id, "--json", "--api-key", key],
        capture_output=True,
        text=True,
        env={**BASE_ENV, "AUDIO_API_URL": url},
    )
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["task_id"] == task_id


def test_cancel_and_a_cancelled_task_exit_codes(url: str, validator_stopped: None) -> None:
    """No validator runs, so the task stays pending until cancelled."""
    task_id = cli(url, "tts", "never spoken").stdout.strip()
    watcher = subprocess.Popen(
        [CLI, "--url", url, "watch", task_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=BASE_ENV,
    )
    with Client(url) as client:
        # Cancel once the watcher follows the task: its first progress line is out.
        assert watcher.stderr.readline().startswith(f"{task_id} pending attempts=0 ")
        cancelled = cli(url, "cancel", task_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stderr == f"{task_id} cancelled\n"
        assert client.get(task_id).status == "cancelled"
    _, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 1, err
    assert f"{task_id} cancelled" in err
    assert cli(url, "status", task_id).returncode == 1
    again = cli(url, "cancel", task_id, "--json")
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"]["status"] == 409
    listed = cli(url, "list", "--status", "cancelled", "--limit", "100", "--json")
    assert task_id in [t["task_id"] for t in json.loads(listed.stdout)["tasks"]]
