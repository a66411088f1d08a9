"""A TCP relay on loopback that stands in for the network between two hosts, and can fail.

A SIGKILLed process on a healthy loopback link loses nothing that it had answered: the kernel
still delivers what it wrote. Networks fail otherwise: a partition (``cut``: no byte crosses,
no connection is reset, so neither side notices by itself) and a host's death (``drop``: every
connection is reset, what was in flight is lost).
"""

from __future__ import annotations

import asyncio


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

    def heal(self) -> None:
        """The partition ends: bytes cross again and new links are made."""
        self._accepting = True
        self._open.set()

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
