"""Helpers of the Sentinel failover chaos test: a relay that stands in for the network
between master and replica (and can be cut), a submitter that keeps every answer's code,
and the figures the test prints.

A SIGKILLed process on a healthy loopback link loses nothing that it had answered: the kernel
still delivers what it wrote to the replica. Asynchronous replication loses acknowledged
writes when the link fails before the master does (a partition, then the host's death): the
relay's ``cut`` and ``drop`` are those two events.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.chaos.conftest import WORKLOAD


class LinkRelay:
    """A TCP relay on loopback from the replica to its master (``upstream``)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._accepting = True
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> LinkRelay:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """A partition: from now on no byte crosses, either way, and no new link is made."""
        self._accepting = False
        self._open.clear()

    def drop(self) -> None:
        """The far side's host is gone: every connection is reset and what the relay still
        held (in its buffers and the kernel's) is lost, as packets in flight would be."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        self._open.set()  # the relays wake, find their connections gone, and end

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._carry(reader, up_writer), self._carry(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.transport.abort()

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._open.wait()
            data = await reader.read(65536)
            if not data:
                return
            await self._open.wait()
            if writer.transport.is_closing():
                return  # dropped while this data waited: it is lost
            writer.write(data)
            await writer.drain()


@dataclass
class Answer:
    """One submission: its HTTP status (0: no answer), error code, task id, and when."""

    status: int
    code: str | None
    task_id: str | None
    kind: str
    at: float


@dataclass
class Answers:
    all: list[Answer] = field(default_factory=list)

    @property
    def accepted(self) -> list[Answer]:
        return [a for a in self.all if a.status == 202]

    def refused(self) -> dict[str, int]:
        """Count per ``<status> <code>`` of every answer that was not a 202."""
        return dict(Counter(f"{a.status} {a.code}" for a in self.all if a.status != 202))


async def submit(
    session: aiohttp.ClientSession,
    api: str,
    kind: str,
    answers: Answers,
    callback_url: str,
) -> None:
    """One submission as a client sends it, its answer kept whatever it is."""
    request = WORKLOAD.request(kind, callback_url)
    try:
        async with session.post(
            f"{api}/{kind}", timeout=aiohttp.ClientTimeout(total=15), **request
        ) as resp:
            body = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        answers.all.append(Answer(0, type(exc).__name__, None, kind, time.time()))
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {}
    code = (parsed.get("error") or {}).get("code") if status != 202 else None
    answers.all.append(Answer(status, code, parsed.get("task_id"), kind, time.time()))


def seconds(since: float, at: float | None) -> float | None:
    return None if at is None else round(at - since, 1)
