"""A finished transcription in OpenAI's response formats: json, text, srt, vtt, verbose_json.

Segments are the winning miner's (docs/protocol.md, optional); without them one segment
spans the whole audio, from 0 to its duration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: The formats that show timed segments (read from the blob store for a long transcript).
TIMED = ("srt", "vtt", "verbose_json")


@dataclass(frozen=True)
class Transcript:
    task_id: str
    text: str
    language: str
    duration: float | None  # seconds, read from the upload; None if it did not decode
    segments: list[dict[str, Any]] | None  # the miner's [{start, end, text}], if any

    def cues(self) -> list[dict[str, Any]]:
        """The segments to show: the miner's, else one over the whole audio."""
        if self.segments:
            return self.segments
        return [{"start": 0.0, "end": self.duration or 0.0, "text": self.text}]


def respond(transcript: Transcript, response_format: str) -> web.Response:
    """The answer for ``response_format`` (one of :data:`FORMATS`)."""
    if response_format == "json":
        return _json({"text": transcript.text})
    if response_format == "verbose_json":
        return _json(verbose(transcript))
    if response_format == "srt":
        return web.Response(text=srt(transcript.cues()), content_type="application/x-subrip")
    if response_format == "vtt":
        return web.Response(text=vtt(transcript.cues()), content_type="text/vtt")
    return web.Response(text=transcript.text, content_type="text/plain")


def verbose(transcript: Transcript) -> dict[str, Any]:
    cues = transcript.cues()
    duration = transcript.duration
    if duration is None:
        duration = max((c["end"] for c in cues), default=0.0)
    return {
        "task": "transcribe",
        "language": transcript.language,
        "duration": round(duration, 3),
        "text": transcript.text,
        "segments": [
            {"id": i, "start": c["start"], "end": c["end"], "text": c["text"]}
            for i, c in enumerate(cues)
        ],
    }


def srt(cues: list[dict[str, Any]]) -> str:
    blocks = [
        f"{i}\n{_clock(c['start'], ',')} --> {_clock(c['end'], ',')}\n{c['text'].strip()}\n"
        for i, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def vtt(cues: list[dict[str, Any]]) -> str:
    blocks = [
        f"{_clock(c['start'], '.')} --> {_clock(c['end'], '.')}\n{c['text'].strip()}\n"
        for c in cues
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _clock(seconds: float, separator: str) -> str:
    """HH:MM:SS,mmm (SubRip) or HH:MM:SS.mmm (WebVTT)."""
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")
