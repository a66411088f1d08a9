"""Audio content sniffing: is this upload one of the containers the miners decode?

Judged from the first bytes, not from the client's Content-Type or file name, so a
mislabelled text file is rejected before it is queued.
"""

from __future__ import annotations

#: Bytes of a file's head that :func:`sniff` needs (ID3 header plus one MPEG frame header).
HEAD_BYTES = 64

_EBML = b"\x1a\x45\xdf\xa3"


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits and no reserved version/layer/rate values."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    # Reserved values; layer 0 is also how AAC ADTS headers look, which is not MP3.
    return version != 0b01 and layer != 0 and bitrate != 0b1111 and sample_rate != 0b11


def _id3(head: bytes) -> bool:
    """An ID3v2 tag header: "ID3", a sane version and four 7-bit size bytes."""
    return (
        len(head) >= 10
        and head[:3] == b"ID3"
        and head[3] < 0xFF
        and head[4] < 0xFF
        and all(b < 0x80 for b in head[6:10])
    )


def sniff(head: bytes) -> str | None:
    """The container format of a file starting with ``head`` (wav, mp3, flac, ogg, m4a,
    webm), or None if it is none of them."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "m4a"
    if head[:4] == _EBML:
        return "webm"
    if _id3(head) or _mpeg_frame(head):
        return "mp3"
    return None
