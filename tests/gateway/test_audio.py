"""Content sniffing of the accepted audio containers, and look-alikes that are not."""

from __future__ import annotations

import pytest

from devnet.audio import synthesize
from services.gateway.audio import sniff

MPEG1_LAYER3_128K = b"\xff\xfb\x90\x64" + b"\0" * 60


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (synthesize("hi", 0.05), "wav"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"ID3\x04\x00\x00\x00\x00\x10\x00" + MPEG1_LAYER3_128K, "mp3"),
        (MPEG1_LAYER3_128K, "mp3"),
        (b"\xff\xf3\x84\x64" + b"\0" * 8, "mp3"),  # MPEG-2 layer III
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02" + b"\0" * 20, "ogg"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "m4a"),
        (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00", "m4a"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "webm"),
    ],
)
def test_known_containers(head, kind):
    assert sniff(head) == kind


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello, this is plain text",
        b"RIFF\x24\x00\x00\x00AVI LIST",  # RIFF, but video
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"%PDF-1.7\n",
        b"\xff\xf1\x50\x80",  # AAC ADTS: frame sync but layer 0
        b"\xff\xfb\xf0\x64",  # MPEG frame sync with the reserved bitrate index 15
        b"\xff\xfb\x9c\x64",  # reserved sample rate index 3
        b"ID3\xff\x00\x00\x00\x00\x00\x00",  # ID3 with an impossible version
        b"ID3\x03\x00\x00\x80\x00\x00\x00",  # ID3 size bytes must be 7-bit
        b"fLa",
    ],
)
def test_not_audio(head):
    assert sniff(head) is None
