"""A TCP proxy on loopback in front of the real gateway, breaking the events stream the way
networks and ingresses do, for the client's reconnect and fallback paths.

- ``cut_streams=N``: the first N events streams are cut (both sockets closed) right after
  their first event reached the client, as a dropped connection or a restarted replica
  does.
- ``refuse_events=True``: every events request gets 404 ``not_found``, as from a gateway
  without the route or an ingress that routes no such path.

Everything else is forwarded byte for byte. ``heads`` holds the head of every request,
``cut_events`` the event delivered before each cut.
"""

from __future__ import annotations

import asyncio
import re
import threading

#: The blank line that ends an event, in any of the line endings SSE allows.
EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
NOT_FOUND = b'{"error": {"code": "not_found", "message": "no route", "field": null}}'


class Proxy:
    def __init__(self, upstream: int, *, cut_streams: int = 0, refuse_events: bool = False):
        self.upstream = upstream
        self.cut_streams = cut_streams
        self.refuse_events = refuse_events
        self.heads: list[str] = []
        self.cut_events: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events_heads(self) -> list[str]:
        return [h for h in self.heads if h.split(" ", 2)[1].split("?")[0].endswith("/events")]

    def __enter__(self) -> Proxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _run(self) -> None:
        start = asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._server = self._loop.run_until_complete(start)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        """Close the listener and every connection still open."""
        self._server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        cut = asyncio.Event()  # set while the answer being relayed is a stream to cut
        both = [
            asyncio.ensure_future(self._requests(reader, writer, up_writer, cut)),
            asyncio.ensure_future(self._answers(up_reader, writer, cut)),
        ]
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in both:
                task.cancel()
            await asyncio.gather(*both, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
        cut: asyncio.Event,
    ) -> None:
        """Each request of the connection (httpx sends the next only once the answer to
        the previous one is read), recorded, then forwarded or refused."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            self.heads.append(head.decode("latin-1"))
            is_events = head.split(b" ", 2)[1].split(b"?")[0].endswith(b"/events")
            if is_events and self.refuse_events:
                writer.write(
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(NOT_FOUND), NOT_FOUND)
                )
                await writer.drain()
                return
            if is_events and self.cut_streams > 0:
                self.cut_streams -= 1
                cut.set()
            upstream.write(head)
            length = re.search(rb"\r\ncontent-length: *(\d+)", head.lower())
            if length:
                upstream.write(await reader.readexactly(int(length.group(1))))
            elif b"\r\ntransfer-encoding: chunked" in head.lower():
                await _copy(reader, upstream)  # no further request is looked at
                return
            await upstream.drain()

    async def _answers(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        seen = b""
        while chunk := await source.read(65536):
            if not cut.is_set():
                sink.write(chunk)
                await sink.drain()
                continue
            seen += chunk
            _, sep, body = seen.partition(b"\r\n\r\n")
            start = 0
            while sep and (blank := EVENT_END.search(body, start)):
                if b"data:" in body[start : blank.start()]:
                    # Up to the end of the first event (not a comment), then the
                    # connection goes down.
                    sink.write(seen[: len(seen) - len(body) + blank.end()])
                    await sink.drain()
                    self.cut_events.append(body[start : blank.end()].decode("utf-8", "replace"))
                    return
                start = blank.end()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()
