"""Scoring, selection and weights as pure functions (docs/scoring.md)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devnet import audio
from devnet.miner import corrupt, junk, leading_sentences
from services.validator import scoring
from services.validator.miners import Miner
from services.validator.minerstats import MinerState
from services.validator.selection import SelectionPolicy, choose
from services.validator.weights import compute_weights
from shared.tasks import SHORT_TEXT_WORDS
from tests.validator.conftest import ARTICLE

TEXT = "please transcribe this short sentence about the weather"


def test_wer_accuracy():
    assert scoring.wer_accuracy(TEXT, TEXT) == 1.0
    assert scoring.wer_accuracy("One, two: three four!", "one two THREE four") == 1.0
    assert scoring.wer_accuracy("one two three four", "one two tree four") == 0.75
    assert scoring.wer_accuracy("one two three four", "") == 0.0
    assert scoring.wer_accuracy("one two", "x " * 10_000) == 0.0
    assert scoring.wer_accuracy("", "") == 1.0


def test_tts_audio_checks():
    assert scoring.audio_problem(audio.synthesize(TEXT), TEXT) is None
    assert scoring.audio_problem(audio.synthesize(TEXT, silent=True), TEXT) == "silent"
    assert scoring.audio_problem(b"RIFF" + bytes(100), TEXT) == "undecodable"
    assert scoring.audio_problem(random.Random(1).randbytes(4000), TEXT) == "undecodable"
    assert scoring.audio_problem(audio.synthesize(TEXT, 120.0), TEXT) == "implausible_duration"
    assert scoring.audio_problem(audio.synthesize(TEXT, 0.1), TEXT) == "implausible_duration"


def test_wer_compares_long_transcripts_on_their_first_words():
    """Past MAX_WER_WORDS both texts are cut at the same word count: a long honest
    transcript still scores by its errors (one error counts 1 / MAX_WER_WORDS)."""
    long = " ".join(f"w{i % 500}" for i in range(scoring.MAX_WER_WORDS * 3))
    assert scoring.wer_accuracy(long, long) == 1.0
    one_wrong = long.replace("w7 ", "seven ", 1)
    assert scoring.wer_accuracy(long, one_wrong) == pytest.approx(1 - 1 / scoring.MAX_WER_WORDS)
    junk = " ".join(f"j{i}" for i in range(scoring.MAX_WER_WORDS * 3))
    assert scoring.consensus_accuracy([long, junk, long]) == [1.0, 0.0, 1.0]


WAV = audio.synthesize(TEXT)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, len(WAV)),
)
def test_hostile_audio_never_raises(edits, cut):
    """Any corruption of a WAV header is a verdict (a problem or None), never an exception."""
    data = bytearray(WAV)
    for position, value in edits:
        data[position] = value
    verdict = scoring.audio_problem(bytes(data[:cut]), TEXT)
    assert verdict in (None, "undecodable", "silent", "implausible_duration")


def test_rouge_l():
    assert scoring.rouge_l("a b c d", "a b c d") == 1.0
    assert scoring.rouge_l("a b c d", "e f g") == 0.0
    assert scoring.rouge_l("alpha beta gamma delta", "alpha gamma delta epsilon") == 0.75


def test_intrinsic_summary_prefers_a_real_summary():
    good = scoring.intrinsic_summary(ARTICLE, leading_sentences(ARTICLE))
    rng = random.Random(3)
    assert good > 0.2
    assert scoring.intrinsic_summary(ARTICLE, junk(rng, 20)) == 0.0
    assert scoring.intrinsic_summary(ARTICLE, ARTICLE) == 0.0  # a copy is no summary
    assert good > scoring.intrinsic_summary(ARTICLE, corrupt(leading_sentences(ARTICLE), 0.7, rng))
    # Words that are not in the source cost: a garbled summary loses to the faithful one.
    garbled = leading_sentences(ARTICLE).replace("budget", "bzdgqt")
    assert 0 < scoring.intrinsic_summary(ARTICLE, garbled) < good


def test_speed_and_combined_score():
    assert scoring.speed_score(0.0, 60) == 1.0
    assert scoring.speed_score(30.0, 60) == 0.5
    assert scoring.speed_score(90.0, 60) == 0.0
    assert scoring.combined_score(1.0, 0.5, 0.7, 0.3) == pytest.approx(0.85)
    assert scoring.combined_score(None, 1.0, 0.7, 0.3) == pytest.approx(0.3)
    assert scoring.combined_score(0.0, 1.0, 0.7, 0.3) == 0.0  # fast junk earns nothing


def test_consensus_without_a_reference():
    honest = "the meeting starts at nine in the morning"
    scores = scoring.consensus_accuracy([honest, honest, "zx qv wk"])
    assert scores[0] == scores[1] == 1.0 and scores[2] == 0.0
    assert scoring.consensus_accuracy([honest]) == [None]


POLICY = SelectionPolicy(size=3, max_in_flight=2, failure_threshold=3, cooldown=60)


def miners(n: int) -> list[Miner]:
    return [Miner(uid=i, hotkey=f"hk{i}", url=f"http://m{i}") for i in range(n)]


def test_selection_takes_the_best_and_explores_one_rarely_tried():
    pool = miners(6)
    states = {f"hk{i}": MinerState(score=s, tries=50) for i, s in enumerate([0.9, 0.8, 0.7, 0.6])}
    for seed in range(20):
        chosen = choose(pool, states, {}, POLICY, now=0, rng=random.Random(seed))
        uids = [m.uid for m in chosen]
        assert uids[:2] == [0, 1]
        assert uids[2] in (4, 5)  # never tried: the exploration slot goes to them first


def test_selection_skips_busy_and_resting_miners_and_puts_asked_ones_last():
    pool = miners(4)
    states = {
        "hk0": MinerState(score=0.9, tries=50),
        "hk1": MinerState(score=0.8, tries=50, consecutive_failures=3, last_failure=100),
        "hk2": MinerState(score=0.7, tries=50),
        "hk3": MinerState(score=0.6, tries=50),
    }
    busy = {"hk0": 2}
    chosen = choose(pool, states, busy, POLICY, now=110, already_asked=frozenset({"hk2"}))
    assert [m.uid for m in chosen] == [3, 2]
    # After the cool-down the resting miner is back.
    later = choose(pool, states, busy, POLICY, now=200, already_asked=frozenset({"hk2"}))
    assert [m.uid for m in later][:2] == [1, 3]


def test_selection_waits_for_a_busy_healthy_miner_rather_than_ask_a_resting_one():
    pool = miners(2)
    states = {
        "hk0": MinerState(score=0.9, tries=50),
        "hk1": MinerState(score=0.1, tries=50, consecutive_failures=3, last_failure=100),
    }
    assert choose(pool, states, {"hk0": 2}, POLICY, now=110) == []
    assert [m.uid for m in choose(pool, states, {"hk0": 1}, POLICY, now=110)] == [0]


def test_a_retry_waits_for_a_busy_miner_not_asked_yet():
    pool = miners(2)
    states = {m.hotkey: MinerState(score=0.5, tries=50) for m in pool}
    asked = frozenset({"hk1"})
    assert choose(pool, states, {"hk0": 2}, POLICY, now=0, already_asked=asked) == []
    assert [m.uid for m in choose(pool, states, {}, POLICY, now=0, already_asked=asked)] == [0, 1]
    # Once every miner has been asked, the asked ones are tried again.
    everyone = frozenset({"hk0", "hk1"})
    assert len(choose(pool, states, {"hk0": 2}, POLICY, now=0, already_asked=everyone)) == 1


def test_selection_when_every_miner_rests_still_tries():
    pool = miners(2)
    states = {m.hotkey: MinerState(consecutive_failures=5, last_failure=100) for m in pool}
    assert len(choose(pool, states, {}, POLICY, now=101)) == 2
    assert choose(pool, states, {"hk0": 2, "hk1": 2}, POLICY, now=101) == []


def test_weights_follow_running_scores():
    pool = miners(3)
    weights = compute_weights(pool, {"hk0": 0.6, "hk1": 0.2, "hk9": 1.0})
    assert weights == pytest.approx({0: 0.75, 1: 0.25, 2: 0.0})
    assert compute_weights(pool, {}) == {}


def test_texts_of_at_most_short_text_words_are_too_short_to_summarize():
    assert scoring.too_short_to_summarize("Long article text here...")
    twenty = " ".join(f"word{i}." for i in range(SHORT_TEXT_WORDS))
    assert scoring.too_short_to_summarize(twenty)
    assert not scoring.too_short_to_summarize(twenty + " one more")
    assert not scoring.too_short_to_summarize(ARTICLE)
