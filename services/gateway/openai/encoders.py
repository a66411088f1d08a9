"""Audio through PyAV (FFmpeg in its wheel): TTS WAV into the /v1 speech formats, and the
duration of an uploaded file.

The miners answer TTS with a WAV (docs/protocol.md). ``wav`` passes it through; ``pcm`` is
OpenAI's raw format (24 kHz, 16-bit signed little-endian, mono); ``mp3``, ``opus`` (in Ogg)
and ``flac`` are encoded from it. Encoding is CPU work: callers run it in a thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

import av
from av.audio.fifo import AudioFifo


@dataclass(frozen=True)
class Format:
    media_type: str
    container: str | None  # None: passed through, or raw samples
    codec: str | None
    sample_format: str
    rate: int | None  # None: the input's rate


#: response_format -> how to produce it.
SPEECH_FORMATS: dict[str, Format] = {
    "wav": Format("audio/wav", None, None, "s16", None),
    "pcm": Format("audio/pcm", None, None, "s16", 24_000),
    "mp3": Format("audio/mpeg", "mp3", "libmp3lame", "s16p", None),
    "opus": Format("audio/ogg", "ogg", "libopus", "s16", 48_000),
    "flac": Format("audio/flac", "flac", "flac", "s16", None),
}


class AudioError(ValueError):
    """Audio that FFmpeg cannot decode or encode."""


def encode(wav: bytes, response_format: str) -> bytes:
    """The WAV ``wav`` in ``response_format`` (a key of :data:`SPEECH_FORMATS`)."""
    target = SPEECH_FORMATS[response_format]
    if target.container is None and target.rate is None:
        return wav
    try:
        with av.open(io.BytesIO(wav)) as source:
            rate = target.rate or source.streams.audio[0].rate
            frames = _resampled(source, target.sample_format, rate)
            if target.container is None:
                return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in frames)
            return _mux(frames, target, rate)
    except (av.FFmpegError, IndexError) as exc:
        raise AudioError(f"cannot encode {response_format}: {exc}") from None


def _resampled(source: av.container.InputContainer, sample_format: str, rate: int) -> list:
    resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
    frames = []
    for frame in source.decode(audio=0):
        frame.pts = None
        frames.extend(resampler.resample(frame))
    frames.extend(resampler.resample(None))
    return frames


def _mux(frames: list, target: Format, rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format=target.container) as sink:
        stream = sink.add_stream(target.codec, rate=rate, layout="mono")
        size = stream.codec_context.frame_size or 1024
        fifo = AudioFifo()
        for frame in frames:
            fifo.write(frame)
            while fifo.samples >= size:
                sink.mux(stream.encode(fifo.read(size)))
        if fifo.samples:
            sink.mux(stream.encode(fifo.read()))
        sink.mux(stream.encode(None))
    return out.getvalue()


def duration(file: IO[bytes]) -> float | None:
    """Seconds of audio in ``file`` (any container FFmpeg reads), or None if it does not
    decode. The container's own figure when it states one, else the decoded samples."""
    try:
        with av.open(file, mode="r") as container:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
            samples = sum(frame.samples for frame in container.decode(stream))
            return samples / stream.rate if stream.rate else None
    except (av.FFmpegError, IndexError, ValueError):
        return None
