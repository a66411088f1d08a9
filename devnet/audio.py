"""WAV audio whose spoken text travels in a standard RIFF ``LIST/INFO`` chunk (ICMT).

The simulated TTS miner writes such files; the simulated WhisperX instance and the simulated
miners "transcribe" by reading the chunk back. That makes round-trip scoring real in local
runs without any model. Audio without the chunk (real speech, an MP3) carries nothing they
can read: they answer 422 instead of inventing a transcript.
"""

from __future__ import annotations

import io
import math
import struct
import wave

SAMPLE_RATE = 16_000
#: Seconds of speech per word, for a plausible duration.
SECONDS_PER_WORD = 0.35


def speech_duration(text: str) -> float:
    """A plausible spoken duration for ``text``."""
    return max(0.5, len(text.split()) * SECONDS_PER_WORD)


def synthesize(text: str, duration: float | None = None, *, silent: bool = False) -> bytes:
    """16 kHz mono 16-bit WAV of a soft tone, with ``text`` embedded as INFO/ICMT."""
    seconds = speech_duration(text) if duration is None else duration
    frames = int(seconds * SAMPLE_RATE)
    amplitude = 0 if silent else 3000
    # One period repeated: cheap to build for long files, still non-silent audio.
    period = [int(amplitude * math.sin(2 * math.pi * 220 * i / SAMPLE_RATE)) for i in range(400)]
    chunk = struct.pack(f"<{len(period)}h", *period)
    pcm = (chunk * (frames // len(period) + 1))[: frames * 2]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return _append_info(buf.getvalue(), text) if text else buf.getvalue()


def embedded_text(data: bytes) -> str | None:
    """The INFO/ICMT text of a RIFF WAVE file, or None when it has none or is not RIFF."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                sid, ssize = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                if sid == b"ICMT":
                    return body[sub + 8 : sub + 8 + ssize].rstrip(b"\0").decode("utf-8", "replace")
                sub += 8 + ssize + (ssize & 1)
        pos += 8 + size + (size & 1)
    return None


def duration(data: bytes) -> float:
    """Length of a WAV file in seconds (raises wave.Error / EOFError if it does not decode)."""
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def _append_info(wav: bytes, text: str) -> bytes:
    value = text.encode("utf-8") + b"\0"
    if len(value) & 1:
        value += b"\0"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(value)) + value
    chunk = b"LIST" + struct.pack("<I", len(info)) + info
    body = wav[8:] + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body
