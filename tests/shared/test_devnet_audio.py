import wave

import pytest

from devnet import audio


def test_text_round_trips_through_a_valid_wav():
    data = audio.synthesize("héllo wörld, twice")
    assert audio.embedded_text(data) == "héllo wörld, twice"
    assert audio.duration(data) == pytest.approx(audio.speech_duration("héllo wörld, twice"), 0.01)


def test_plain_or_foreign_audio_has_no_text():
    assert audio.embedded_text(audio.synthesize("")) is None
    assert audio.embedded_text(b"ID3\x03not a wav") is None
    with pytest.raises((wave.Error, EOFError)):
        audio.duration(b"RIFF\x00\x00\x00\x00WAVEjunk")
