"""The validator's own answers to compare miners with: WhisperX (through the lb) and an
optional reference summarizer.

A reference that cannot be had comes back as a :class:`Reference` without text and with the
reason (also logged): the task still completes, but what needed the reference is scored as
unknown, never as perfect (see docs/scoring.md).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.validator.client import read_capped
from shared.logging import get_logger

log = get_logger("validator.reference")

MAX_REFERENCE_BYTES = 4 * 1024 * 1024
#: An error answer is read this far for its message, which is cut to MAX_DETAIL characters.
MAX_ERROR_BYTES = 64 * 1024
MAX_DETAIL = 200

PIPELINE = "the WhisperX pipeline"
SUMMARIZER = "the reference summarizer"


@dataclass(frozen=True)
class Reference:
    """A reference text, or (``text`` None) the reason there is none, for the task's result.

    ``rejected`` means the pipeline answered 4xx: it judged the input itself unprocessable
    (audio it cannot decode or understand), rather than being down or overloaded.
    """

    text: str | None
    reason: str | None = None
    rejected: bool = False


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

    async def transcribe(self, audio: bytes, language: str) -> Reference:
        """WhisperX's transcript of ``audio``, or why there is none."""
        form = aiohttp.FormData()
        form.add_field("file", audio, filename="audio.wav", content_type="audio/wav")
        form.add_field("language", language)
        form.add_field("response_format", "json")
        url = f"{self.lb_url}/v1/audio/transcriptions"
        return await self._post(PIPELINE, url, "text", data=form)

    async def summarize(self, text: str, language: str) -> Reference:
        """The reference summarizer's summary, or why there is none (e.g. none configured)."""
        if not self.summarizer_url:
            return Reference(None, "no reference summarizer is configured")
        return await self._post(
            SUMMARIZER, self.summarizer_url, "summary", json={"text": text, "language": language}
        )

    async def _post(self, name: str, url: str, field: str, **kwargs: Any) -> Reference:
        """POST and take ``field`` (a string) from the JSON answer."""
        try:
            async with asyncio.timeout(self.timeout):
                async with self.session.post(url, allow_redirects=False, **kwargs) as resp:
                    if resp.status != 200:
                        detail = await _error_detail(resp)
                        log.warning("reference_failed", url=url, status=resp.status, detail=detail)
                        return Reference(
                            None,
                            f"{name} answered {resp.status}" + (f": {detail}" if detail else ""),
                            rejected=400 <= resp.status < 500,
                        )
                    answer = json.loads(await read_capped(resp, MAX_REFERENCE_BYTES))
        except TimeoutError:
            log.warning("reference_failed", url=url, error="timeout")
            return Reference(None, f"{name} did not answer within {self.timeout:g} s")
        except aiohttp.ClientError as exc:
            log.warning("reference_failed", url=url, error=repr(exc))
            return Reference(None, f"{name} is unreachable ({type(exc).__name__})")
        except ValueError as exc:  # not JSON, or over MAX_REFERENCE_BYTES (TooLarge)
            log.warning("reference_failed", url=url, error=repr(exc))
            return Reference(None, f"{name} sent an answer that could not be read")
        text = answer.get(field) if isinstance(answer, dict) else None
        if not isinstance(text, str):
            log.warning("reference_failed", url=url, error=f"no {field}")
            return Reference(None, f"{name} answered without a {field!r} field")
        return Reference(text)


async def _error_detail(resp: aiohttp.ClientResponse) -> str:
    """The message of an error answer: FastAPI's ``detail`` or our ``error.message``."""
    try:
        body = json.loads(await read_capped(resp, MAX_ERROR_BYTES))
    except (ValueError, aiohttp.ClientError):
        return ""
    detail: object = None
    if isinstance(body, dict):
        detail = body.get("detail")
        error = body.get("error")
        if detail is None and isinstance(error, dict):
            detail = error.get("message")
    if not isinstance(detail, str):
        # FastAPI's validation errors are a list of objects: keep them readable, but short.
        detail = json.dumps(detail) if detail is not None else ""
    return " ".join(detail.split())[:MAX_DETAIL]
