"""The validator's own answers to compare miners with: WhisperX (through the lb) and an
optional reference summarizer.

A reference that cannot be had returns None (and is logged): the task still completes,
scored by what can be judged without it (see docs/scoring.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import aiohttp

from services.validator.client import read_capped
from shared.blobs import BlobError
from shared.logging import get_logger

log = get_logger("validator.reference")

MAX_REFERENCE_BYTES = 4 * 1024 * 1024

#: Opens a stream of audio bytes (called once per request: a stream is read only once).
AudioStream = Callable[[], AsyncIterator[bytes]]


class ReferenceClient:
    """Calls LB_URL (``POST /v1/audio/transcriptions``) and SUMMARIZER_URL."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        lb_url: str,
        summarizer_url: str | None,
        timeout: float,
    ) -> None:
        self.session = session
        self.lb_url = lb_url.rstrip("/")
        self.summarizer_url = summarizer_url
        self.timeout = timeout

    async def transcribe(self, audio: bytes | AudioStream, language: str) -> str | None:
        """WhisperX's transcript of ``audio`` (bytes, or a function opening a stream of
        them: a stored input is sent as it is read), or None when the pipeline is
        unavailable."""
        form = aiohttp.FormData()
        value = audio if isinstance(audio, bytes) else audio()
        form.add_field("file", value, filename="audio.wav", content_type="audio/wav")
        form.add_field("language", language)
        form.add_field("response_format", "json")
        answer = await self._post_json(f"{self.lb_url}/v1/audio/transcriptions", data=form)
        text = answer.get("text") if answer else None
        return text if isinstance(text, str) else None

    async def summarize(self, text: str, language: str) -> str | None:
        """The reference summarizer's summary, or None when none is configured or it fails."""
        if not self.summarizer_url:
            return None
        answer = await self._post_json(
            self.summarizer_url, json={"text": text, "language": language}
        )
        summary = answer.get("summary") if answer else None
        return summary if isinstance(summary, str) else None

    async def _post_json(self, url: str, **kwargs: object) -> dict | None:
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.post(url, allow_redirects=False, **kwargs) as resp:
                    if resp.status != 200:
                        log.warning("reference_failed", url=url, status=resp.status)
                        return None
                    answer = json.loads(await read_capped(resp, MAX_REFERENCE_BYTES))
        except TimeoutError:
            log.warning("reference_failed", url=url, error="timeout")
            return None
        except (aiohttp.ClientError, ValueError, BlobError) as exc:
            # BlobError: the stored input could not be streamed (store away, gone).
            log.warning("reference_failed", url=url, error=repr(exc))
            return None
        return answer if isinstance(answer, dict) else None
