"""What every scenario shares: child processes measured through the OS, nginx, wrk,
statistics, machine information and the result files.

Every server runs as its own process on loopback; whole-process figures (CPU seconds, RSS,
peak RSS) come from psutil and /proc, never from the process itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from devnet.redis_server import free_port
from devnet.stack import is_ready

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
#: Big, reusable inputs (the 1 GiB upload) live in the git-ignored var/ directory.
WORK = ROOT / "var" / "bench"
PY = sys.executable
MIB = 1024 * 1024


def log(message: str) -> None:
    """Progress on stderr, so that stdout stays the bench's results."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of several runs, with the runs themselves."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


# --------------------------------------------------------------------------- processes


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and its live descendants (gunicorn and nginx have workers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process tree so far."""
    total = 0.0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def _status_kib(pid: int, field_name: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def rss_mib(pid: int) -> float:
    """Resident set size of the process tree now, in MiB."""
    return sum(_status_kib(p.pid, "VmRSS") for p in process_tree(pid)) / 1024


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of the process tree, in MiB (summed over processes)."""
    return sum(_status_kib(p.pid, "VmHWM") for p in process_tree(pid)) / 1024


@dataclass
class Server:
    """One server process on loopback, started and stopped by the bench."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    health_path: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> Server:
        """Spawn it (output to var/bench/logs/<name>.log) and wait until it answers."""
        logs = WORK / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{self.name}.log").open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode};"
                    f" see {logs / self.name}.log"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s")

    def _ready(self) -> bool:
        return is_ready(self.port, self.health_path)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        return rss_mib(self.pid)

    def peak_rss(self) -> float:
        return peak_rss_mib(self.pid)


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Start the servers in order and stop them all (newest first) on the way out."""
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server.start())
        yield servers
    finally:
        for server in reversed(started):
            server.stop()


def whisperx(name: str, *options: str) -> Server:
    """A simulated WhisperX instance (devnet/whisperx.py) on a free port."""
    port = free_port()
    argv = [PY, "-m", "devnet.whisperx", "--port", str(port), *options]
    return Server(name, argv, port, health_path="/health")


def lb(instances: Sequence[Server], **env: str) -> Server:
    """The lb in its production configuration (JSON logs at INFO, sent to a file)."""
    port = free_port()
    settings = {
        "ENVIRONMENT": "production",
        "LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **{f"INSTANCE_{i}_URL": s.url for i, s in enumerate(instances, start=1)},
        **env,
    }
    return Server("lb", [PY, "-m", "services.lb"], port, settings, health_path="/health")


@dataclass(frozen=True)
class Timed:
    """A command run to completion, with its rusage from wait4."""

    returncode: int
    wall: float
    cpu: float
    max_rss_mib: float
    stdout: bytes


def run_timed(
    argv: Sequence[str], timeout: float = 600.0, env: dict[str, str] | None = None
) -> Timed:
    """Run a client command; wall time, CPU and peak RSS come from the kernel (wait4)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Timed(
            proc.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            out.read(),
        )


# --------------------------------------------------------------------------- nginx


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Where and with what the figures were taken."""
    # Imported here: bench.tools builds on this module's Server.
    from bench.tools import nginx_version, wrk_binary

    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    wrk = wrk_binary()
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "redis_py": _version("redis"),
        "gunicorn": _version("gunicorn"),
        "nginx": nginx_version(),
        # "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." -> "wrk debian/4.1.0-3+b2"
        "wrk": " ".join(
            subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split()[:2]
        )
        if wrk
        else None,
        "load_average_at_start": os.getloadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_result(
    scenario: str, quick: bool, machine: dict[str, Any], started: float, figures: dict[str, Any]
) -> Path:
    """bench/results/<scenario>.json: machine, versions, settings and raw figures."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{scenario}.json"
    document = {
        "scenario": scenario,
        "quick": quick,
        "machine": machine,
        "wall_seconds": round(time.monotonic() - started, 1),
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
