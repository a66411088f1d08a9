"""Zero-copy upload relay: the request body goes from the client's socket to the
instance's through a kernel pipe (Linux ``splice(2)``), never through Python buffers.

Used for large bodies with a Content-Length (:func:`eligible`), once aiohttp's client has
sent the request headers: the bytes aiohttp's server already read (they sit in the
request's StreamReader) go first, as ordinary writes; then the server connection stops
reading and the rest moves socket -> pipe -> socket, up to ``PIPE_BYTES`` per call.

Everything else is as on the portable path (``data=request.content``), which is what runs
where ``os.splice`` is missing, for chunked or small bodies, and towards an instance over
TLS:

- byte-exact: exactly Content-Length bytes, in order, nothing re-encoded;
- a client that goes away mid-body (EOF or reset before Content-Length bytes) makes the
  write fail, so aiohttp's client closes the instance's connection (the instance sees the
  upload cut off), and :class:`ClientGone` tells the proxy what happened;
- an instance that fails mid-body makes the write fail too: a 502, as before;
- nothing is read from the client before the instance's connection is open, so a failed
  connection still fails over to the next instance.

The client connection is closed after the answer (``Connection: close``): its HTTP parser
never saw the spliced bytes, so it cannot be reused for another request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from typing import Any

from aiohttp import payload, web
from aiohttp.abc import AbstractStreamWriter

#: Bodies at least this large are spliced; smaller ones are not worth a pipe and a
#: connection that cannot be kept alive.
SPLICE_MIN_BYTES = 1 << 20
#: Pipe capacity asked for (F_SETPIPE_SZ); the kernel may grant less, which only means
#: more, smaller calls.
PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

AVAILABLE = hasattr(os, "splice")
#: Set on a request once its connection's reading was taken over: the connection must be
#: closed after the answer, whatever the answer is.
ENGAGED = web.RequestKey("upload_spliced", bool)


class ClientGone(ConnectionResetError):
    """The client closed its connection before the whole body arrived."""


def _plain_socket(transport: Any) -> socket.socket | None:
    """The transport's TCP socket, unless it is missing or wrapped in TLS."""
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return sock if sock is not None and sock.type == socket.SOCK_STREAM else None


def eligible(request: web.Request) -> bool:
    """Whether this request's body can be spliced (see the module docstring)."""
    length = request.content_length
    return (
        AVAILABLE
        and length is not None
        and length >= SPLICE_MIN_BYTES
        and "chunked" not in request.headers.get("Transfer-Encoding", "").lower()
        and _plain_socket(request.transport) is not None
    )


class SplicedBody(payload.Payload):
    """The request's body as an aiohttp payload that splices itself into the connection.

    :attr:`spliced` counts the bytes that went through the pipe, :attr:`copied` those
    written from Python (what aiohttp had buffered, or the whole body towards TLS)."""

    def __init__(self, request: web.Request) -> None:
        super().__init__(request.content, size=request.content_length)
        self._request = request
        self.spliced = 0
        self.copied = 0
        self.engaged = False  # the client connection's reading was taken over
        self.client_gone = False

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a streamed upload cannot be decoded")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        request = self._request
        total = request.content_length or 0
        upstream = _plain_socket(getattr(writer, "transport", None))
        client = _plain_socket(request.transport)
        if upstream is None or client is None:
            async for chunk in request.content.iter_any():  # the portable path
                self.copied += len(chunk)
                await writer.write(chunk)
            return
        # Taken in one go, with no await: no data_received can slip in between.
        buffered = _drain(request.content)
        request.transport.pause_reading()
        self.engaged = True
        request[ENGAGED] = True
        remaining = total - request.content.total_bytes
        try:
            for chunk in buffered:
                self.copied += len(chunk)
                await writer.write(chunk)
            send_headers = getattr(writer, "send_headers", None)
            if send_headers is not None:  # aiohttp holds them back for the first chunk
                send_headers()
            await _flushed(writer)
            if remaining > 0:
                self.spliced = await _splice(client, upstream, remaining)
        except ClientGone:
            self.client_gone = True
            raise
        finally:
            # Whatever happened, the server must not wait for body bytes it will never see
            # (aiohttp's lingering close would read a paused connection for 10 s).
            request.content.feed_eof()


def _drain(stream: Any) -> list[bytes]:
    chunks = []
    while chunk := stream.read_nowait(-1):
        chunks.append(chunk)
    return chunks


async def _flushed(writer: AbstractStreamWriter) -> None:
    """Return once the transport's own buffer is empty: spliced bytes must come after it.
    With a high-water mark of 0, any byte still buffered pauses the protocol, and drain()
    waits for the transport to resume it, which it does at an empty buffer."""
    transport = writer.transport  # type: ignore[attr-defined]
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        await writer.drain()
    finally:
        transport.set_write_buffer_limits(high=high, low=low)


async def _splice(client: socket.socket, upstream: socket.socket, count: int) -> int:
    """Move ``count`` bytes from ``client`` to ``upstream`` through a pipe; the bytes
    moved. ClientGone when the client's side ends early; OSError from either socket."""
    loop = asyncio.get_running_loop()
    # Own descriptors for the same sockets: the event loop's readers and writers are per
    # descriptor, and the transports keep theirs.
    src, dst = os.dup(client.fileno()), os.dup(upstream.fileno())
    read_end, write_end = os.pipe()
    moved = 0
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_BYTES)
        while moved < count:
            try:
                got = os.splice(src, write_end, min(count - moved, PIPE_BYTES), flags=_FLAGS)
            except BlockingIOError:
                await _ready(loop, src, reading=True)
                continue
            if got == 0:
                raise ClientGone(f"the client sent {moved} of {count} body bytes")
            pending = got
            while pending:
                try:
                    pending -= os.splice(read_end, dst, pending, flags=_FLAGS)
                except BlockingIOError:
                    await _ready(loop, dst, reading=False)
            moved += got
        return moved
    finally:
        for fd in (read_end, write_end, src, dst):
            os.close(fd)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, reading: bool) -> None:
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    (loop.add_reader if reading else loop.add_writer)(fd, wake)
    try:
        await waiter
    finally:
        (loop.remove_reader if reading else loop.remove_writer)(fd)
