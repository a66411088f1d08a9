"""Malformed HTTP framing from a raw TCP miner (bad status lines, lying lengths, broken
chunking, junk headers): the real MinerClient fails the answer and raises nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import bittensor as bt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.validator.client import MinerClient
from tests.validator.test_hostile_miners import (
    LIMIT,
    PROPERTY,
    ask,
    assert_sound,
    client,
)

__all__ = ["client"]  # a fixture, used by name


# -- Malformed HTTP framing: a raw TCP miner ---------------------------------------------------


@dataclass
class RawMiner:
    """A miner on a bare socket: verifies btauth/1, then writes raw bytes as the answer."""

    hotkey: str
    url: str = ""
    answer: bytes = b""
    stall: bool = False
    accepted: int = 0
    nonces: Any = field(default_factory=bt.http_auth.InMemoryNonceStore)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            bt.http_auth.verify(
                headers, body, method=method, path=path,
                self_hotkey_ss58=self.hotkey, nonce_store=self.nonces,
            )  # fmt: skip
            self.accepted += 1
            writer.write(self.answer)
            await writer.drain()
            if self.stall:
                await reader.read()  # until the client closes its side
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def raw_miner(miner_wallets) -> AsyncIterator[RawMiner]:
    miner = RawMiner(miner_wallets[1].hotkey.ss58_address)
    server = await asyncio.start_server(miner.serve, "127.0.0.1", 0)
    miner.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield miner
    server.close()


#: Header lines: lying, absurd or conflicting framing and encodings, and plain junk.
header_lines = st.lists(
    st.sampled_from(
        [
            b"Content-Length: 5",
            b"Content-Length: 99999",
            b"Content-Length: -1",
            b"Content-Length: abc",
            b"Content-Length: 18446744073709551616",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Content-Encoding: gzip",
            b"Content-Encoding: br",
            b"Content-Encoding: deflate",
            b"Content-Type: application/json; charset=utf-16",
            b"Connection: close",
            b"X-Long: " + b"x" * 20000,
        ]
    )
    | st.binary(max_size=40).map(lambda b: b"X-Junk: " + b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=3,
)


#: Status lines: half of them sound, so the headers and bodies behind them get parsed too.
status_lines = st.just(b"HTTP/1.1 200 OK") | st.sampled_from(
    [
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 200",
        b"HTTP/1.1 2000 OK",
        b"HTTP/2.0 200 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 -200 OK",
        b"garbage",
        b"",
    ]
)


@PROPERTY
@given(
    status_line=status_lines,
    headers=header_lines,
    body=st.sampled_from([b"", b'{"output": "hello", "model": "m"}', b"0\r\n\r\n", b"zz\r\nab"])
    | st.binary(max_size=300),
    stall=st.booleans(),
)
async def test_malformed_http_framing_is_a_failure_never_an_exception(
    raw_miner, validator_wallet, status_line, headers, body, stall
):
    """Bad status lines, lying or absurd lengths, broken chunking and encodings, junk
    headers, a connection left open: all end as a failed response within the timeout."""
    raw_miner.answer = b"\r\n".join([status_line, *headers, b"", body])
    raw_miner.stall = stall
    # A session per example: the raw miner closes each connection after one answer, and a
    # pooled connection it already closed would fail the next example before its answer.
    async with aiohttp.ClientSession() as session:
        client = MinerClient(session, validator_wallet.hotkey, LIMIT)
        response = await ask(client, raw_miner)
    assert_sound(response)
    assert raw_miner.accepted > 0
