"""Sampling profiles of a running server with py-spy, summarised for the results file.

py-spy attaches from outside (ptrace), so the server runs unmodified; ``--nonblocking``
keeps the sampler from pausing it. Samples are collapsed stacks (``-f raw``); idle
threads are left out, so shares are of the process's busy time.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: Busy-time categories, by a substring of any frame on the stack; earlier ones win.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("request signing (btauth sign)", ("sign (bittensor/http_auth.py", "sign (client.py")),
    ("scoring and judging", ("(tasktypes.py", "(scoring.py")),
    ("logging (structlog)", ("structlog/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("Redis client (redis-py)", ("redis/",)),
    ("HTTP client (aiohttp client)", ("aiohttp/client", "aiohttp/connector")),
    ("HTTP server (aiohttp web)", ("aiohttp/web", "aiohttp/http_")),
    ("JSON", ("json/",)),
)

#: The gateway's busy time: where a submission (or a 429) spends its CPU. Libraries that
#: are on the stack only while called are matched anywhere on it (JSON inside logging is
#: logging); the rest by the innermost frame (the leaf categories after these).
GATEWAY_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (structlog)", ("structlog/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("Redis client (redis-py)", ("redis/",)),
    ("validation (marshmallow)", ("marshmallow/",)),
    ("JSON", ("json/", "orjson")),
    ("gateway code (services/, shared/)", ("=services/", "=shared/")),
    ("HTTP server (aiohttp web)", ("=aiohttp/", "=multidict/", "=yarl/")),
    ("event loop (asyncio/uvloop)", ("=asyncio/", "=uvloop")),
)


def py_spy() -> str | None:
    """The py-spy next to this Python (the bench extra), else on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Recorder:
    """``py-spy record`` on one pid until :meth:`stop` (SIGINT makes it write the file)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self.out = out
        binary = py_spy()
        self.process: subprocess.Popen[bytes] | None = None
        if binary is None:
            return
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "-p",
                str(pid),
                "-r",
                str(rate),
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
                "-d",
                "600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(
        self, categories: tuple[tuple[str, tuple[str, ...]], ...] = CATEGORIES
    ) -> dict[str, Any] | None:
        """Stop sampling; the summary, or None when py-spy is missing or failed."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not self.out.exists():
            return None
        return summarise(self.out.read_text(), categories=categories)


def _frame(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'func (file.py)': one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(
    collapsed: str,
    top: int = 15,
    categories: tuple[tuple[str, tuple[str, ...]], ...] = CATEGORIES,
) -> dict[str, Any]:
    """Top functions by own and inclusive samples, and the busy time per category."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_frame(frames[-1])] += n
        for name in {_frame(f) for f in frames}:
            inclusive[name] += n
        # The first category in CATEGORIES order with a frame on the stack owns the sample:
        # signing inside a client call is signing, JSON inside logging is logging.
        # A key starting with "=" is matched against the innermost frame only.
        category = next(
            (
                c
                for c, keys in categories
                if any(
                    k[1:] in frames[-1] if k.startswith("=") else any(k in f for f in frames)
                    for k in keys
                )
            ),
            "other",
        )
        busy[category] += n

    def share(counter: Counter[str], limit: int | None = None) -> list[dict[str, Any]]:
        return [{"name": name, "share": n / total} for name, n in counter.most_common(limit)]

    return {
        "samples": total,
        "categories": share(busy) if total else [],
        "top_own": share(own, top) if total else [],
        "top_inclusive": share(inclusive, top) if total else [],
    }
