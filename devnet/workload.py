"""Submissions of every task type as a client sends them, for load generators (the chaos
tests and the Redis cost bench): the same request bodies as the README's curl examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from devnet import audio

#: The native task types, in the order load generators cycle through them.
KINDS = ("transcription", "tts", "summarization")


@dataclass(frozen=True)
class Workload:
    """What each submission carries: ``spoken`` is the TTS text and the transcript embedded
    in the transcription's WAV; ``article`` is the text to summarize."""

    spoken: str
    article: str
    wav: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wav", audio.synthesize(self.spoken))

    def request(self, kind: str, callback_url: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``session.post(f"{api}/{kind}", ...)``."""
        extra = {"callback_url": callback_url} if callback_url else {}
        if kind == "transcription":
            form = aiohttp.FormData()
            form.add_field("audio_file", self.wav, filename="a.wav", content_type="audio/wav")
            form.add_field("source_language", "en")
            for name, value in extra.items():
                form.add_field(name, value)
            return {"data": form}
        text = self.article if kind == "summarization" else self.spoken
        return {"json": {"text": text, "source_language": "en", **extra}}
