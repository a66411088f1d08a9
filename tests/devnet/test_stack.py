"""devnet.stack helpers that chaos tests rely on, with real processes."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from devnet.redis_server import free_port
from devnet.stack import Service, Stack


def test_add_replica_runs_a_second_process_on_a_port_of_its_own(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    port = free_port()
    argv = ["-m", "devnet.whisperx", "--port", str(port), "--concurrency", "1"]
    original = Service("whisperx", argv, {"SOME_PORT": str(port), "OTHER": "x"}, port, "/health")
    stack.services[original.name] = original
    try:
        stack.spawn(original)
        stack.wait_ready(original, 30)
        replica = stack.add_replica("whisperx")
        third = stack.add_replica("whisperx")
        assert [replica.name, third.name] == ["whisperx-2", "whisperx-3"]
        assert replica.port not in (port, third.port)
        assert replica.argv == ["-m", "devnet.whisperx", "--port", str(replica.port), *argv[4:]]
        assert replica.env == {"SOME_PORT": str(replica.port), "OTHER": "x"}
        assert replica.process is not None and replica.process.pid != original.process.pid
        with urllib.request.urlopen(f"{replica.url}/health", timeout=5) as resp:
            assert json.load(resp)["status"] == "ok"
        # Each is its own process: killing the replica leaves the original serving.
        stack.kill("whisperx-2")
        assert replica.process.poll() is not None and original.process.poll() is None
    finally:
        stack.stop()
