"""Seeded numpy synthesis of evaluation audio from a split's word clips and background noise: long
keyword streams, training-like 10 s keyword clips, 10 s sentences, and clips with noise at a set SNR
(numpy and kws_tf.dataset only). Speech is mixed by SNR: the RMS of a word's spoken part against the
RMS of the noise under it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kws_tf.dataset import speech_extents

log = logging.getLogger(__name__)

SR = 16000
STREAM_SNR_DB = (5.0, 15.0)  # keyword streams and sentences
NOISE_LEVEL_DB = (-40.0, -28.0)  # background RMS (dBFS) of streams and sentences
STREAM_GAP_S = (1.5, 4.0)  # silence between the 1 s clips of a stream ("a word every few seconds")
STREAM_KEYWORD_PROB = 0.2
SENTENCE_GAP_S = (0.05, 0.4)


@dataclass
class WordBank:
    """Word clips of one split, ready to mix.

    Attributes:
        audio: ``(n, samples)`` float32 clips (1 s, centre-padded).
        words: ``(n,)`` the word of each clip.
        extents: ``(n, 2)`` float, start and end (s) of the spoken part (``dataset.speech_extents``).
        speech_rms: ``(n,)`` float, RMS of the spoken part.
        noise: background recordings, each ``(samples,)`` float32 (white noise if the folder has none).
    """

    audio: np.ndarray
    words: np.ndarray
    extents: np.ndarray
    speech_rms: np.ndarray
    noise: list[np.ndarray]

    @classmethod
    def build(cls, audio_int16: np.ndarray, words: list[str], noise: list[np.ndarray], sample_rate_hz: int = SR) -> WordBank:
        audio = np.asarray(audio_int16, np.float32) / 32768.0
        extents = speech_extents(audio, sample_rate_hz)
        rms = np.array([_rms(a[int(s * sample_rate_hz):int(e * sample_rate_hz)]) for a, (s, e) in zip(audio, extents)])
        noise = [np.asarray(n, np.float32) for n in noise if len(n) and _rms(n) > 0]
        if not noise:
            log.warning("no background noise recordings: using white noise")
            noise = [np.random.default_rng(0).standard_normal(60 * sample_rate_hz).astype(np.float32) * 0.1]
        return cls(audio, np.asarray(words), extents, np.maximum(rms, 1e-5), noise)

    def indices(self, keyword: str | None = None, exclude: str | None = None, vocabulary: set[str] | None = None) -> np.ndarray:
        """Clip indices of ``keyword`` (if given), else of every word other than ``exclude`` (and
        within ``vocabulary`` when given)."""
        if keyword is not None:
            return np.flatnonzero(self.words == keyword)
        ok = np.ones(len(self.words), bool) if exclude is None else self.words != exclude
        if vocabulary is not None:
            ok &= np.isin(self.words, sorted(vocabulary))
        return np.flatnonzero(ok)


def split_bank(data_dir: str, split: str, fold: tuple[int, int] | None = None, lists_dir: str | None = None) -> WordBank:
    """The word bank of one split of a Speech Commands folder (unreadable clips are skipped); ``fold``
    and ``lists_dir`` as in ``index_speech_commands``."""
    from kws_tf.dataset import index_speech_commands, load_clips, load_noise

    index = index_speech_commands(data_dir, lists_dir, fold)
    loaded = load_clips(index.select(split), SR, progress=False)
    noise, _ = load_noise(index.noise_files)
    return WordBank.build(loaded.audio, [c.word for c in loaded.clips], noise)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def noise_crop(bank: WordBank, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` float32 from a random recording at a random offset (looped when too short), unit RMS."""
    src = bank.noise[int(rng.integers(len(bank.noise)))]
    reps = -(-(n + len(src)) // len(src))
    start = int(rng.integers(len(src)))
    crop = np.tile(src, reps)[start:start + n]
    return (crop / max(_rms(crop), 1e-8)).astype(np.float32)


@dataclass
class Mixture:
    """A synthesized recording and what is in it.

    Attributes:
        audio: ``(samples,)`` float32.
        words: ``[(word, start_s, end_s)]`` every clip placed, spoken-part times, in time order.
        keyword_spans: ``(k, 2)`` float, start and end (s) of each keyword's spoken part.
    """

    audio: np.ndarray
    words: list[tuple[str, float, float]]
    keyword_spans: np.ndarray


def mix(bank: WordBank, placements: list[tuple[int, float]], duration_s: float, keyword: str,
        rng: np.random.Generator, snr_db: tuple[float, float] = STREAM_SNR_DB,
        noise_level_db: tuple[float, float] = NOISE_LEVEL_DB) -> Mixture:
    """Lay clips ``[(clip index, offset_s)]`` over a noise background, each at a random SNR."""
    n = int(round(duration_s * SR))
    noise_rms = 10.0 ** (rng.uniform(*noise_level_db) / 20.0)
    audio = noise_crop(bank, n, rng) * noise_rms
    words, spans = [], []
    for idx, offset in placements:
        gain = noise_rms * 10.0 ** (rng.uniform(*snr_db) / 20.0) / bank.speech_rms[idx]
        start = int(round(offset * SR))
        clip = bank.audio[idx][: n - start]
        audio[start:start + len(clip)] += gain * clip
        s, e = offset + bank.extents[idx][0], offset + bank.extents[idx][1]
        words.append((str(bank.words[idx]), float(s), float(e)))
        if bank.words[idx] == keyword:
            spans.append((s, e))
    return Mixture(np.clip(audio, -1.0, 1.0).astype(np.float32), words, np.array(spans, float).reshape(-1, 2))


def keyword_stream(bank: WordBank, keyword: str, minutes: float, seed: int,
                   segment_s: float = 60.0) -> Iterator[tuple[float, Mixture]]:
    """A long evaluation stream in consecutive segments: 1 s clips with ``STREAM_GAP_S`` seconds between them, the
    keyword with probability ``STREAM_KEYWORD_PROB``, other words otherwise; noise changes per segment.

    Yields:
        ``(segment start_s, Mixture)``; times inside each Mixture are relative to the segment.
    """
    kw_idx, other_idx = bank.indices(keyword), bank.indices(exclude=keyword)
    total_s = minutes * 60.0
    start, i = 0.0, 0
    while start < total_s - 1e-9:
        dur = min(segment_s, total_s - start)
        rng = np.random.default_rng([seed, 1, i])
        placements, t = [], rng.uniform(*STREAM_GAP_S) / 2
        while t + 1.0 <= dur:
            pool = kw_idx if (len(kw_idx) and (rng.random() < STREAM_KEYWORD_PROB or not len(other_idx))) else other_idx
            if len(pool):
                placements.append((int(rng.choice(pool)), t))
            t += 1.0 + rng.uniform(*STREAM_GAP_S)
        yield start, mix(bank, placements, dur, keyword, rng)
        start, i = start + dur, i + 1


def training_like_clips(bank: WordBank, keyword: str, n: int, seed: int, clip_s: float = 10.0,
                        min_gap_s: float = 0.1, max_gap_s: float = 1.2, max_keywords: int = 3,
                        max_other_words: int = 6) -> Iterator[Mixture]:
    """10 s clips built like the keyword model's training clips (slots of one clip plus a random gap,
    each the keyword with probability 0.3 or another word with 0.45), for the frame-level F1."""
    kw_idx, other_idx = bank.indices(keyword), bank.indices(exclude=keyword)
    for i in range(n):
        rng = np.random.default_rng([seed, 2, i])
        t, placements, kws, others = rng.uniform(0.0, max_gap_s), [], 0, 0
        while t + 1.0 <= clip_s:
            u = rng.random()
            if u < 0.3 and kws < max_keywords and len(kw_idx):
                placements.append((int(rng.choice(kw_idx)), t))
                kws += 1
            elif 0.3 <= u < 0.75 and others < max_other_words and len(other_idx):
                placements.append((int(rng.choice(other_idx)), t))
                others += 1
            t += 1.0 + rng.uniform(min_gap_s, max_gap_s)
        yield mix(bank, placements, clip_s, keyword, rng)


@dataclass
class Sentence:
    """A 10 s sentence: ``reference`` holds the words after the keyword (all words when it has none)."""

    mixture: Mixture
    reference: list[str]
    has_keyword: bool


def sentences(bank: WordBank, keyword: str, vocabulary: set[str], n_with: int, n_without: int, seed: int,
              clip_s: float = 10.0) -> list[Sentence]:
    """``n_with`` sentences "[other word] keyword w1 .. wk" (k = 2-4; a word before the keyword half
    the time, which the gate must ignore) and ``n_without`` of 3-5 words and no keyword."""
    kw_idx, word_idx = bank.indices(keyword), bank.indices(exclude=keyword, vocabulary=vocabulary)
    if not len(word_idx):
        return []
    out = []
    for i in range(n_with + n_without):
        # Sentences with and without the keyword draw from separate seed streams, so fewer of either
        # (e.g. for the slow peer) are the same first ones.
        rng = np.random.default_rng([seed, 3, i] if i < n_with else [seed, 5, i - n_with])
        has_kw = i < n_with and len(kw_idx) > 0
        lead = has_kw and rng.random() < 0.5
        count = int(rng.integers(2, 5)) if has_kw else int(rng.integers(3, 6))
        picks = ([int(rng.choice(word_idx))] if lead else []) + ([int(rng.choice(kw_idx))] if has_kw else [])
        after = [int(rng.choice(word_idx)) for _ in range(count)]
        placements, t = [], rng.uniform(0.2, 0.8)
        for idx in picks + after:
            placements.append((idx, t))
            t += 1.0 + rng.uniform(*SENTENCE_GAP_S)
        out.append(Sentence(mix(bank, placements, clip_s, keyword, rng), [str(bank.words[j]) for j in after], has_kw))
    return out


def add_noise(bank: WordBank, indices: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``(len(indices), samples)`` float32: the clips with background noise at ``snr_db`` (speech RMS
    over its spoken part against the noise RMS)."""
    rng = np.random.default_rng([seed, 4, int(round(snr_db * 10))])
    out = np.empty((len(indices), bank.audio.shape[1]), np.float32)
    for row, idx in enumerate(indices):
        noise = noise_crop(bank, bank.audio.shape[1], rng) * bank.speech_rms[idx] / 10.0 ** (snr_db / 20.0)
        out[row] = np.clip(bank.audio[idx] + noise, -1.0, 1.0)
    return out
