"""Signed requests to miners (docs/protocol.md); every answer becomes a MinerResponse.

A miner is untrusted: a timeout, a refused connection, a huge or malformed body all come
back as a failed :class:`MinerResponse`, never as an exception, so one hostile miner
cannot break a task. Each call signs anew: a resent signature would be a replay.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import bittensor as bt

from services.validator.miners import Miner
from shared.logging import get_logger

log = get_logger("validator.client")

MAX_MODEL_NAME = 128
#: Most timed segments kept from one answer (docs/protocol.md); an answer with more keeps
#: its text and loses its segments.
MAX_SEGMENTS = 10_000


#: Bodies larger than this are sent in slices of this size, each awaited: a socket's write
#: buffer then never holds a second copy of a large body per miner.
SEND_SLICE = 256 * 1024


@dataclass(frozen=True)
class MinerRequest:
    """What is asked of every miner in one attempt (the body is signed per miner).

    ``encoded``, when given, is the body already built (:mod:`services.validator.inputs`
    streams a stored input into it once per task); every miner and attempt shares it.
    """

    task_id: str
    task_type: str
    language: str
    input: str = field(repr=False)  # base64 audio for transcription, plain text otherwise
    timeout: float
    encoded: bytes | bytearray | None = field(default=None, repr=False, compare=False)

    def body(self) -> bytes | bytearray:
        if self.encoded is not None:
            return self.encoded
        return json.dumps(
            {
                "task_id": self.task_id,
                "task_type": self.task_type,
                "language": self.language,
                "input": self.input,
                "timeout": self.timeout,
            },
            separators=(",", ":"),
        ).encode()


@dataclass(frozen=True)
class MinerResponse:
    """One miner's answer. ``error`` is None for a usable answer, else a short kind."""

    miner: Miner
    latency: float
    output: bytes = b""
    model: str = ""
    reported_time: float | None = None
    error: str | None = None
    nonce: str | None = None
    #: A transcription's optional timed segments, [{start, end, text}], as the miner sent
    #: them if they were well formed (docs/protocol.md).
    segments: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class _Rejected(Exception):
    """The answer broke the protocol; the message is the failure kind."""


class TooLarge(ValueError):
    """A response body was bigger than the limit the caller set."""


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refusing (TooLarge) to buffer more than ``limit`` bytes."""
    if (resp.content_length or 0) > limit:
        raise TooLarge(f"declared {resp.content_length} bytes")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def request_path(miner: Miner, task_type: str) -> str:
    """The request target that is both sent and signed: the miner URL's path + /v1/<type>."""
    return urlsplit(miner.url).path.rstrip("/") + f"/v1/{task_type}"


class MinerClient:
    """Sends :class:`MinerRequest` to miners over one pooled aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, signer: Any, max_bytes: int) -> None:
        self.session = session
        self.signer = signer
        self.max_bytes = max_bytes

    def sign(self, miner: Miner, path: str, body: bytes) -> dict[str, str]:
        """Fresh btauth/1 headers for exactly this body, bound to the miner's hotkey."""
        return bt.http_auth.sign(
            self.signer, method="POST", path=path, body=body, receiver_ss58=miner.hotkey
        )

    async def query(self, miner: Miner, request: MinerRequest, *, binary: bool) -> MinerResponse:
        """POST the request to one miner; ``binary`` = the output is base64 (TTS audio)."""
        path = request_path(miner, request.task_type)
        body = request.body()
        headers = self.sign(miner, path, body)
        headers["Content-Type"] = "application/json"
        nonce = headers.get(bt.http_auth.HEADER_NONCE)
        url = miner.url.rstrip("/") + f"/v1/{request.task_type}"
        data: bytes | bytearray | AsyncIterator[memoryview] = body
        if len(body) > SEND_SLICE:
            headers["Content-Length"] = str(len(body))
            data = _slices(body)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(request.timeout):
                async with self.session.post(
                    url, data=data, headers=headers, allow_redirects=False
                ) as resp:
                    raw = await self._read(resp)
            output, model, reported, segments = _parse(raw, binary=binary)
        except TimeoutError:
            return self._failed(miner, start, "timeout", nonce)
        except aiohttp.ClientError as exc:
            return self._failed(miner, start, "connection", nonce, detail=repr(exc))
        except _Rejected as exc:
            return self._failed(miner, start, str(exc), nonce)
        return MinerResponse(
            miner=miner,
            latency=time.perf_counter() - start,
            output=output,
            model=model,
            reported_time=reported,
            nonce=nonce,
            segments=segments,
        )

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.status != 200:
            raise _Rejected(f"http_{resp.status}")
        try:
            return await read_capped(resp, self.max_bytes)
        except TooLarge:
            raise _Rejected("too_large") from None

    def _failed(
        self, miner: Miner, start: float, kind: str, nonce: str | None, detail: str = ""
    ) -> MinerResponse:
        log.debug("miner_failed", uid=miner.uid, kind=kind, detail=detail[:200])
        return MinerResponse(
            miner=miner, latency=time.perf_counter() - start, error=kind, nonce=nonce
        )


async def _slices(body: bytes | bytearray) -> AsyncIterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), SEND_SLICE):
        yield view[start : start + SEND_SLICE]


def _parse(
    raw: bytes, *, binary: bool
) -> tuple[bytes, str, float | None, list[dict[str, Any]] | None]:
    """Validate a 200 answer: {"output", "model", "processing_time"} with a non-empty output,
    and a text answer's optional ``segments``."""
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Rejected("bad_json") from None
    if not isinstance(answer, dict):
        raise _Rejected("bad_json")
    output = answer.get("output")
    if not isinstance(output, str) or not output.strip():
        raise _Rejected("empty_output")
    if binary:
        try:
            data = base64.b64decode(output, validate=True)
        except (binascii.Error, ValueError):
            raise _Rejected("bad_base64") from None
    else:
        data = output.encode("utf-8", errors="replace")
    model = answer.get("model")
    model = model[:MAX_MODEL_NAME] if isinstance(model, str) and model else "unknown"
    segments = None if binary else _segments(answer.get("segments"))
    return data, model, _seconds(answer.get("processing_time")), segments


def _segments(value: Any) -> list[dict[str, Any]] | None:
    """Well-formed segments (start <= end, in order of start), rounded to milliseconds; None
    when absent or malformed (the answer still counts: segments are optional)."""
    if not isinstance(value, list) or not value or len(value) > MAX_SEGMENTS:
        return None
    segments, previous_start = [], 0.0
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            return None
        start, end = _seconds(item.get("start")), _seconds(item.get("end"))
        if start is None or end is None or start < previous_start or end < start:
            return None
        segments.append({"start": round(start, 3), "end": round(end, 3), "text": item["text"]})
        previous_start = start
    return segments


def _seconds(value: Any) -> float | None:
    """The miner's self-reported processing time, if it is a sane number (informational)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
