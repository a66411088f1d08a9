"""The whole local stack as real processes: embedded Redis, gateway, validator, lb, simulated
WhisperX instances and simulated miners. ``make run`` and the end-to-end tests both use it."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devnet import init
from devnet.redis_server import RedisServer, free_port, free_ports

#: Simulated miners: (profile, extra command-line options). The accurate one should win:
#: the noisy and garbage ones are faster but wrong, and the flaky one (right when it answers)
#: is slower.
MINER_PROFILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accurate", ("--latency", "0.2")),
    ("noisy", ("--wer", "0.3", "--latency", "0.1")),
    ("flaky", ("--failure-rate", "0.5", "--latency", "0.4")),
    ("garbage", ("--latency", "0.05")),
)
WHISPERX_INSTANCES = 3


@dataclass
class Ports:
    """Where each service listens. ``Ports.free()`` picks free ports (for tests)."""

    redis: int = 6379
    gateway: int = 8000
    lb: int = 8080
    validator: int = 9000
    whisperx: list[int] = field(default_factory=lambda: [9001, 9002, 9003])
    miners: list[int] = field(default_factory=lambda: [9101, 9102, 9103, 9104])

    @classmethod
    def free(cls) -> Ports:
        redis, gateway, lb, validator, *rest = free_ports(
            4 + WHISPERX_INSTANCES + len(MINER_PROFILES)
        )
        return cls(
            redis=redis,
            gateway=gateway,
            lb=lb,
            validator=validator,
            whisperx=rest[:WHISPERX_INSTANCES],
            miners=rest[WHISPERX_INSTANCES:],
        )


@dataclass
class Service:
    """One child process: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    health_path: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    """Starts, watches and stops the local stack. State (Redis AOF, wallets) lives in ``var``."""

    def __init__(
        self,
        var: Path,
        ports: Ports | None = None,
        *,
        redis_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        log_to_files: bool = True,
        miner_profiles: tuple[tuple[str, tuple[str, ...]], ...] = MINER_PROFILES,
    ) -> None:
        self.var = Path(var).resolve()
        self.ports = ports or Ports()
        self.external_redis = redis_url
        self.extra_env = extra_env or {}
        self.log_to_files = log_to_files
        self.miner_profiles = miner_profiles
        self.redis: RedisServer | None = None
        self.services: dict[str, Service] = {}
        self.webhook_secret = ""

    @property
    def redis_url(self) -> str:
        return self.external_redis or f"redis://127.0.0.1:{self.ports.redis}/0"

    def plan(self) -> list[Service]:
        """Every service in start order, with its environment."""
        devnet_dir = self.var / "devnet"
        wallets = devnet_dir / "wallets"
        miners = [
            (profile, f"http://127.0.0.1:{port}")
            for (profile, _), port in zip(self.miner_profiles, self.ports.miners, strict=False)
        ]
        init.initialise(devnet_dir, miners)
        miners_file = devnet_dir / "miners.json"
        self.webhook_secret = self._webhook_secret()
        base = {
            "ENVIRONMENT": "development",
            "REDIS_URL": self.redis_url,
            # The shipped default (var/blobs) when var is the repository's var/; a stack
            # with a var of its own keeps its blobs there too.
            "BLOB_STORE": str(self.var / "blobs"),
            "PYTHONUNBUFFERED": "1",
        }
        services: list[Service] = []
        for i, port in enumerate(self.ports.whisperx, start=1):
            argv = ["-m", "devnet.whisperx", "--port", str(port), "--concurrency", "2"]
            services.append(Service(f"whisperx-{i}", argv, {}, port, "/health"))
        lb_env = {"PORT": str(self.ports.lb), "HEALTH_CHECK_INTERVAL": "2"}
        for i, port in enumerate(self.ports.whisperx, start=1):
            lb_env[f"INSTANCE_{i}_URL"] = f"http://127.0.0.1:{port}"
        services.append(Service("lb", ["-m", "services.lb"], lb_env, self.ports.lb, "/health"))
        for (profile, options), port in zip(self.miner_profiles, self.ports.miners, strict=False):
            argv = [
                "-m", "devnet.miner", "--port", str(port), "--profile", profile, *options,
                "--wallet-path", str(wallets), "--wallet-name", init.miner_wallet(profile),
                "--wallet-hotkey", "default",
            ]  # fmt: skip
            services.append(Service(f"miner-{profile}", argv, {}, port))
        validator_env = {
            **base,
            "VALIDATOR_PORT": str(self.ports.validator),
            "MINERS_FILE": str(miners_file),
            "LB_URL": f"http://127.0.0.1:{self.ports.lb}",
            "BT_WALLET_PATH": str(wallets),
            "BT_WALLET_NAME": init.VALIDATOR_WALLET,
            "BT_WALLET_HOTKEY": "default",
            "WEBHOOK_SECRET": self.webhook_secret,
            "WEBHOOK_ALLOW_PRIVATE": "true",
        }
        services.append(
            Service(
                "validator",
                ["-m", "services.validator"],
                validator_env,
                self.ports.validator,
                "/health",
            )
        )
        gateway_env = {**base, "HOST": "127.0.0.1", "PORT": str(self.ports.gateway)}
        services.append(
            Service(
                "gateway",
                ["-m", "services.gateway"],
                gateway_env,
                self.ports.gateway,
                "/api/v1/health",
            )
        )
        for s in services:
            s.env.update(self.extra_env)
        return services

    def start(self, *, timeout: float = 60.0, announce=None) -> None:
        """Start Redis (unless external) and every service, waiting until each is ready."""
        announce = announce or (lambda _service: None)
        if self.external_redis is None:
            self.redis = RedisServer(self.var / "redis", self.ports.redis, aof=True).start()
            announce(Service("redis", [], {}, self.ports.redis))
        try:
            for service in self.plan():
                self.services[service.name] = service
                self.spawn(service)
            for service in self.services.values():
                self.wait_ready(service, timeout)
                announce(service)
        except BaseException:
            self.stop()
            raise

    def spawn(self, service: Service) -> subprocess.Popen[bytes]:
        """(Re)start one service's process."""
        env = {**os.environ, **service.env}
        out = subprocess.DEVNULL
        if self.log_to_files:
            logs = self.var / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            out = (logs / f"{service.name}.log").open("ab")
        service.process = subprocess.Popen(
            [sys.executable, *service.argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if self.log_to_files else None,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return service.process

    def wait_ready(self, service: Service, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with status {service.process.returncode}"
                    + (f"; see {self.var / 'logs' / service.name}.log" if self.log_to_files else "")
                )
            if is_ready(service.port, service.health_path):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{service.name} was not ready within {timeout:.0f}s")

    def add_replica(self, name: str, *, timeout: float = 60.0) -> Service:
        """Start one more process of service ``name`` (``name-2``, ``name-3``, ...) with the
        same environment and arguments but a free port of its own; waits until it is ready.

        The port is replaced wherever the original's appears (an environment value such as
        VALIDATOR_PORT, or a ``--port`` argument), so any service can be replicated.
        """
        base = self.services[name]
        number = 2
        while f"{name}-{number}" in self.services:
            number += 1
        port, old = free_port(), str(base.port)
        replica = Service(
            f"{name}-{number}",
            [str(port) if arg == old else arg for arg in base.argv],
            {key: str(port) if value == old else value for key, value in base.env.items()},
            port,
            base.health_path,
        )
        self.services[replica.name] = replica
        self.spawn(replica)
        self.wait_ready(replica, timeout)
        return replica

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one service (chaos and failover tests)."""
        proc = self.services[name].process
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=30)

    def stop(self) -> None:
        """Terminate every child (newest first), then Redis."""
        running = [s.process for s in reversed(self.services.values()) if s.process is not None]
        for proc in running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()

    def _webhook_secret(self) -> str:
        path = self.var / "devnet" / "webhook_secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def is_ready(port: int, health_path: str | None = None) -> bool:
    """Whether a loopback server answers: a TCP connect, or 200 from ``health_path``."""
    if health_path is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{health_path}", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False
