"""Pure scoring functions: accuracy per task type, speed, and the combined score.

docs/scoring.md explains every formula here; keep the two in step.
"""

from __future__ import annotations

import array
import io
import itertools
import re
import struct
import sys
import wave
from collections import Counter

import jiwer

from shared.tasks import SHORT_TEXT_WORDS

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")

#: TTS audio is plausible when it lasts between these many seconds per input word...
MIN_SECONDS_PER_WORD = 0.08
MAX_SECONDS_PER_WORD = 2.0
#: ...plus this much leading/trailing silence, and never longer than MAX_TTS_SECONDS.
TTS_PADDING_SECONDS = 3.0
MAX_TTS_SECONDS = 1800.0
#: Peak amplitude (fraction of full scale) under which audio counts as silent.
SILENCE_PEAK = 0.003

#: Intrinsic summary score: the source's most frequent content words a summary should
#: cover, and the band of summary/source length ratios that is not penalized.
TOP_CONTENT_WORDS = 20
LENGTH_BAND = (0.05, 0.5)
#: LCS is quadratic; longer texts are cut to this many words before ROUGE-L.
MAX_LCS_WORDS = 1000
#: WER alignment is quadratic too: transcripts are compared on their first this many words
#: (over an hour of speech), so two huge hostile answers cannot hold a replica for hours.
MAX_WER_WORDS = 10_000

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


def words(text: str, limit: int | None = None) -> list[str]:
    """Lower-cased words without punctuation: the unit every text comparison works on.

    ``limit`` stops after that many words, without scanning the rest of a huge text.
    """
    if limit is None:
        return _WORD.findall(text.lower())
    return [m.group() for m in itertools.islice(_WORD.finditer(text.lower()), limit)]


def wer_accuracy(reference: str, hypothesis: str) -> float:
    """1 - word error rate of ``hypothesis`` against ``reference``, floored at 0.

    Both are compared on their first MAX_WER_WORDS words at most.
    """
    ref = words(reference, MAX_WER_WORDS)
    cut = len(ref) == MAX_WER_WORDS  # a long reference: both are compared on its first words
    # Twice the reference's length is all it takes to decide (see below): read no further.
    hyp = words(hypothesis, MAX_WER_WORDS if cut else max(1, 2 * len(ref)))
    if not ref:
        return 1.0 if not hyp else 0.0
    if not cut and len(hyp) >= 2 * len(ref):
        # Insertions alone already make WER >= 1; skip aligning a hostile, huge answer.
        return 0.0
    error = jiwer.wer(" ".join(ref), " ".join(hyp)) if hyp else 1.0
    return max(0.0, 1.0 - error)


def audio_problem(wav: bytes, text: str) -> str | None:
    """Why TTS audio cannot be right for ``text`` (undecodable, silent, implausible length).

    None when it passes; then it is worth the round trip through WhisperX.
    """
    try:
        with wave.open(io.BytesIO(wav), "rb") as w:
            rate, width, frames = w.getframerate(), w.getsampwidth(), w.getnframes()
            seconds = frames / float(rate) if rate else 0.0
            sample = w.readframes(min(frames, rate * 60))
    except (wave.Error, EOFError, ValueError, OSError, RuntimeError, struct.error):
        # RuntimeError: the wave module's chunk reader on a size field past the data.
        return "undecodable"
    n = max(1, len(words(text)))
    low = MIN_SECONDS_PER_WORD * n
    high = min(MAX_SECONDS_PER_WORD * n + TTS_PADDING_SECONDS, MAX_TTS_SECONDS)
    if not low <= seconds <= high:
        return "implausible_duration"
    if _peak(sample, width) < SILENCE_PEAK:
        return "silent"
    return None


def _peak(pcm: bytes, width: int) -> float:
    """Peak absolute amplitude of PCM samples as a fraction of full scale."""
    if width == 1:
        return max((abs(b - 128) for b in pcm), default=0) / 128
    if width in (2, 4):
        samples = array.array("h" if width == 2 else "i")
        samples.frombytes(pcm[: len(pcm) - len(pcm) % width])
        if sys.byteorder == "big":
            samples.byteswap()
        full = float(1 << (8 * width - 1))
        return max((abs(s) for s in samples), default=0) / full
    if width == 3:
        step = max(1, len(pcm) // 3 // 100_000) * 3
        values = (
            int.from_bytes(pcm[i : i + 3], "little", signed=True)
            for i in range(0, len(pcm) - 2, step)
        )
        return max((abs(v) for v in values), default=0) / float(1 << 23)
    return 0.0


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1: longest common word subsequence against a reference summary."""
    ref, cand = words(reference)[:MAX_LCS_WORDS], words(candidate)[:MAX_LCS_WORDS]
    if not ref or not cand:
        return 0.0
    lcs = _lcs_length(ref, cand)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Classic dynamic programme, one row at a time (O(len(b)) memory)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def too_short_to_summarize(text: str) -> bool:
    """At most SHORT_TEXT_WORDS words: the text is its own summary (its reference)."""
    return len(words(text, SHORT_TEXT_WORDS + 1)) <= SHORT_TEXT_WORDS


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 2]


def intrinsic_summary(source: str, summary: str) -> float:
    """Coverage x faithfulness x length penalty: a summary without a reference to compare.

    coverage = share of the source's TOP_CONTENT_WORDS most frequent content words that the
    summary contains; faithfulness = share of the summary's words found in the source (made-up
    or garbled words cost); the length penalty is 1 inside LENGTH_BAND of summary/source word
    ratios and falls linearly to 0 at a ratio of 0 and of 1 (a copy is no summary).
    """
    src_words, sum_words = words(source), words(summary)
    if not src_words or not sum_words:
        return 0.0
    top = [w for w, _ in Counter(content_words(source)).most_common(TOP_CONTENT_WORDS)]
    present, vocabulary = set(sum_words), set(src_words)
    coverage = sum(w in present for w in top) / len(top) if top else 1.0
    faithfulness = sum(w in vocabulary for w in sum_words) / len(sum_words)
    return coverage * faithfulness * length_penalty(len(sum_words) / len(src_words))


def length_penalty(ratio: float) -> float:
    low, high = LENGTH_BAND
    if ratio < low:
        return ratio / low
    if ratio > high:
        return max(0.0, (1.0 - ratio) / (1.0 - high))
    return 1.0


def speed_score(latency: float, timeout: float) -> float:
    """1 for an instant answer, falling linearly to 0 at TASK_TIMEOUT."""
    if timeout <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - latency / timeout))


def combined_score(
    accuracy: float | None, speed: float, accuracy_weight: float, speed_weight: float
) -> float:
    """ACCURACY_WEIGHT x accuracy + SPEED_WEIGHT x speed, over the weights' sum.

    A wrong answer (accuracy 0) scores 0: speed is no merit in junk, and a fast garbage
    miner must not earn weight. ``accuracy`` None (unknown, nothing to rank by) counts as 0
    in the sum: such an answer ranks by speed alone, below any good judged answer.
    """
    if accuracy is not None and accuracy <= 0:
        return 0.0
    total = accuracy_weight + speed_weight
    return (accuracy_weight * (accuracy or 0.0) + speed_weight * speed) / total


def consensus_accuracy(texts: list[str]) -> list[float | None]:
    """Without a reference: each text's best agreement (1 - WER) with another answer.

    Honest miners agree with each other and junk agrees with nobody; a lone answer cannot
    be judged (None). Agreement ranks answers, but is no accuracy: miners that fail alike
    (or collude) agree too, so it is never reported or rewarded as one.
    """
    if len(texts) < 2:
        return [None] * len(texts)
    return [
        max(wer_accuracy(other, text) for j, other in enumerate(texts) if j != i)
        for i, text in enumerate(texts)
    ]
