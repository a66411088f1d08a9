"""The whole stack as real processes on free loopback ports, once per test module."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devnet.stack import Ports, Stack

#: The settings these tests change from the shipped defaults, each for a reason; recovery
#: (RECLAIM_IDLE, RECLAIM_INTERVAL, HEARTBEAT_INTERVAL, SHUTDOWN_GRACE, RETRY_DELAY,
#: TASK_TIMEOUT) and webhook delivery (WEBHOOK_RETRY_BASE, WEBHOOK_POLL_INTERVAL) run at
#: their defaults.
FAST = {
    # The network figures in /health are published every 15 s; the tests read them at once.
    "NETSTATS_INTERVAL": "1",
    # The lb polls every 30 s by default; the test waits for a killed instance to leave.
    "HEALTH_CHECK_INTERVAL": "1",
    # Quieter logs: the tests read no log lines.
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var: Path = tmp_path_factory.mktemp("stack")
    running = Stack(var, Ports.free(), extra_env=FAST)
    running.start(timeout=90)
    yield running
    running.stop()


def gateway(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway}/api/v1"


async def wait_final(
    session: aiohttp.ClientSession, stack: Stack, task_ids: list[str], patience: float = 90
) -> dict[str, dict[str, Any]]:
    """Poll each task until completed or failed (or patience runs out); return the views."""
    deadline = time.monotonic() + patience
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(views) < len(task_ids):
        for task_id in task_ids:
            if task_id in views:
                continue
            async with session.get(f"{gateway(stack)}/tasks/{task_id}") as resp:
                view = await resp.json()
            if view["status"] in ("completed", "failed"):
                views[task_id] = view
        await asyncio.sleep(0.2)
    return views
