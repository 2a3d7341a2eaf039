"""tf.data pipeline of 10 s keyword clips synthesized on the fly: a background crop, keyword and
other-word clips at random non-overlapping offsets with random levels, and per-frame labels (1 for
``label_s`` after each keyword ends, mapped through the model's stride). Seeded per element."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kws_tf.config import FeatureConfig, KwsDataConfig
from kws_tf.train.augment import NoiseBank, freq_mask, rms, speed_perturb, warp_factors
from kws_tf.train.features_tf import log_mel_tf
from kws_tf.train.word_data import class_tables

KEYWORD_PROB = 0.3  # chance that a slot on the timeline holds the keyword
OTHER_PROB = 0.45  # ... or another word (else it stays empty)


def _timeline(words: tf.Tensor, offsets: tf.Tensor, clip_n: int) -> tf.Tensor:
    """``(clip_n,)``: the ``(slots, word_n)`` clips laid end to end at increasing, non-overlapping
    sample ``offsets`` with silence between them; what runs past ``clip_n`` is cut off. (One concat
    instead of a scatter-add of every sample: the scatter was the slowest op of the pipeline.)"""
    word_n = tf.shape(words)[1]
    ends = tf.concat([[0], offsets[:-1] + word_n], axis=0)
    gaps = tf.maximum(offsets - ends, 0)
    pieces = []
    for j in range(words.shape[0]):
        pieces += [tf.zeros((gaps[j],), tf.float32), words[j]]
    line = tf.concat(pieces, axis=0)[:clip_n]
    return tf.pad(line, [[0, clip_n - tf.shape(line)[0]]])


def group_probs(counts: np.ndarray, confusable_prob: float, synthetic_weight: float | None) -> np.ndarray:
    """Draw probabilities of the four clip groups ``2 * confusable + synthetic`` from their clip
    ``counts``: confusable with ``confusable_prob``, then synthetic with ``synthetic_weight``; an empty
    group passes its share to its neighbour, and ``synthetic_weight=None`` pools real and synthetic
    clips in proportion to their counts."""
    counts = np.asarray(counts, float).reshape(2, 2)
    level = counts.sum(axis=1)
    p_level = np.array([1.0 - confusable_prob, confusable_prob]) if level.all() else (level > 0).astype(float)
    probs = np.zeros((2, 2))
    for c in range(2):
        if level[c] == 0:
            continue
        if synthetic_weight is None or not counts[c].all():
            probs[c] = counts[c] / level[c]
        else:
            probs[c] = [1.0 - synthetic_weight, synthetic_weight]
        probs[c] *= p_level[c]
    return probs.reshape(-1) / max(probs.sum(), 1e-12)


def _group_picker(groups: np.ndarray, probs: np.ndarray):
    """``pick(seed, shape) -> (shape,) int32`` clip indices: a group drawn with ``probs``, then a clip
    of that group uniformly. ``groups``: ``(n,)`` group id (0-3) of each clip."""
    flat, starts, counts = class_tables(groups, np.ones(len(groups), bool), len(probs))
    cum = np.cumsum(probs)
    cum[int(np.flatnonzero(probs > 0).max()) if (probs > 0).any() else -1:] = 1.0  # round-off never picks past the last group
    cum = tf.constant(cum, tf.float32)

    def pick(seed_: tf.Tensor, shape) -> tf.Tensor:
        s = tf.random.experimental.stateless_split(seed_, 2)
        group = tf.minimum(tf.searchsorted(cum, tf.random.stateless_uniform(shape, s[0]), side="right"), len(probs) - 1)
        n = tf.maximum(tf.gather(counts, group), 1)
        k = tf.minimum(tf.cast(tf.random.stateless_uniform(shape, s[1]) * tf.cast(n, tf.float32), tf.int32), n - 1)
        return tf.gather(flat, tf.gather(starts, group) + k)

    return pick


def kws_dataset(
    keyword_audio: np.ndarray,
    keyword_end_s: np.ndarray,
    other_audio: np.ndarray,
    *,
    noise: NoiseBank,
    features: FeatureConfig,
    kws: KwsDataConfig,
    batch_size: int,
    seed: int,
    repeat: bool = True,
    n_examples: int | None = None,
    keyword_start_s: np.ndarray | None = None,
    keyword_synthetic: np.ndarray | None = None,
    other_synthetic: np.ndarray | None = None,
    other_confusable: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batches of ``((B, input_frames, n_mels) float32, (B, output_frames, 1) float32)``.

    Args:
        keyword_audio: ``(Nk, word_samples)`` int16 keyword clips.
        keyword_end_s: ``(Nk,)`` float32, where the spoken keyword ends inside each clip.
        keyword_start_s: ``(Nk,)`` float32, where it starts (for partial-keyword negatives; default 0).
        other_audio: ``(No, word_samples)`` int16 clips of other words (negatives).
        keyword_synthetic, other_synthetic, other_confusable: ``(Nk,)``/``(No,)`` bool flags for
            ``kws.synthetic_weight`` and ``kws.confusable_prob`` (default: all real, none confusable).
        repeat: endless (training) or ``n_examples`` elements (validation).
    """
    sr = features.sample_rate_hz
    clip_n = kws.clip_samples(features)
    word_n = keyword_audio.shape[1]
    slots = int(kws.clip_s // (word_n / sr + kws.min_gap_s))
    frame_time = tf.constant([kws.output_frame_time_s(t, features) for t in range(kws.output_frames(features))], tf.float32)
    kw_t, kw_end_t = tf.constant(keyword_audio), tf.constant(keyword_end_s, tf.float32)
    kw_start_t = tf.zeros_like(kw_end_t) if keyword_start_s is None else tf.constant(keyword_start_s, tf.float32)
    flags = lambda f, n: np.zeros(n, bool) if f is None else np.asarray(f, bool).reshape(n)
    kw_groups = flags(keyword_synthetic, len(keyword_audio)).astype(int)
    other_groups = 2 * flags(other_confusable, len(other_audio)) + flags(other_synthetic, len(other_audio)).astype(int)
    if len(other_audio) == 0:
        other_audio, other_groups = np.zeros((1, word_n), np.int16), np.zeros(1, int)
    other_t = tf.constant(other_audio)
    pick_kw = _group_picker(kw_groups, group_probs(np.bincount(kw_groups, minlength=4), 0.0, kws.synthetic_weight))
    pick_other = _group_picker(other_groups, group_probs(np.bincount(other_groups, minlength=4), kws.confusable_prob, kws.synthetic_weight))

    def level(seed_, low_high, shape=()):
        return tf.pow(10.0, tf.random.stateless_uniform(shape, seed_, *low_high) / 20.0)

    def example(i: tf.Tensor):
        s = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), i]), 14)
        # Background: a noise recording snr_db below the speech level, or near-silence.
        speech_db = tf.random.stateless_uniform((), s[10], *kws.word_level_db)
        use_noise = tf.random.stateless_uniform((), s[0]) < kws.noise_prob
        noise_db = speech_db - tf.random.stateless_uniform((), s[2], *kws.snr_db)
        background = tf.where(
            use_noise,
            noise.crop(s[1], clip_n) * tf.pow(10.0, noise_db / 20.0),
            tf.random.stateless_normal((clip_n,), s[3]) * level(s[2], (-75.0, -55.0)),
        )
        # Timeline: slot j starts one word length plus a random gap after slot j-1.
        gaps = tf.random.stateless_uniform((slots,), s[4], kws.min_gap_s, kws.max_gap_s)
        start = tf.random.stateless_uniform((), s[5], 0.0, kws.max_gap_s)
        offset_s = start + tf.cumsum(gaps, exclusive=True) + tf.range(slots, dtype=tf.float32) * (word_n / sr)
        fits = offset_s * sr + word_n <= clip_n
        kind = tf.random.stateless_uniform((slots,), s[6])
        is_kw = fits & (kind < KEYWORD_PROB)
        is_kw &= tf.cumsum(tf.cast(is_kw, tf.int32)) <= kws.max_keywords
        is_other = fits & (kind >= KEYWORD_PROB) & (kind < KEYWORD_PROB + OTHER_PROB)
        is_other &= tf.cumsum(tf.cast(is_other, tf.int32)) <= kws.max_other_words
        kw_idx, other_idx = pick_kw(s[7], (slots,)), pick_other(s[8], (slots,))
        partial = is_other & (tf.random.stateless_uniform((slots,), s[12]) < kws.partial_keyword_prob)
        words = tf.where((is_kw | partial)[:, None], tf.gather(kw_t, kw_idx), tf.gather(other_t, other_idx))
        words = tf.cast(words, tf.float32) / 32768.0
        start_kw, end_kw = tf.gather(kw_start_t, kw_idx), tf.gather(kw_end_t, kw_idx)
        cut_s = start_kw + (end_kw - start_kw) * tf.random.stateless_uniform((slots,), s[13], 0.4, 0.7)
        keep = tf.range(word_n, dtype=tf.float32)[None, :] < (cut_s * sr)[:, None]
        words = tf.where(partial[:, None] & ~keep, 0.0, words)
        speed = tf.random.stateless_uniform((slots,), s[11], *kws.speed)
        words = speed_perturb(words, speed)
        word_db = speech_db + tf.random.stateless_uniform((slots,), s[9], -kws.word_spread_db, kws.word_spread_db)
        gain = tf.pow(10.0, word_db / 20.0) / rms(words)
        words *= (gain * tf.cast(is_kw | is_other, tf.float32))[:, None]
        offsets = tf.cast(tf.round(offset_s * sr), tf.int32)
        audio = tf.clip_by_value(background + _timeline(words, offsets, clip_n), -1.0, 1.0)
        # Labels: 1 for output frames whose audio ends within label_s after a keyword's end.
        centre_s = word_n / sr / 2.0
        end_s = offset_s + centre_s + (tf.gather(kw_end_t, kw_idx) - centre_s) / speed
        hit = (frame_time[None, :] > end_s[:, None]) & (frame_time[None, :] <= end_s[:, None] + kws.label_s) & is_kw[:, None]
        labels = tf.cast(tf.reduce_any(hit, axis=0), tf.float32)[:, None]
        return audio, labels, i

    def featurize(audio, labels, i):
        warp = None
        if repeat and kws.freq_warp > 0:  # training only, like the masks
            warp = warp_factors(tf.stack([tf.cast(seed, tf.int64) + 2, tf.cast(i[0], tf.int64)]), tf.shape(i)[0], kws.freq_warp)
        feats = log_mel_tf(audio, features, warp)
        if repeat and kws.freq_masks > 0:  # training only: validation clips stay unmasked
            feats = freq_mask(feats, tf.stack([tf.cast(seed, tf.int64) + 1, tf.cast(i[0], tf.int64)]), kws.freq_masks, kws.freq_mask_bins)
        return feats, labels

    ds = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(n_examples or 0)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    return ds.map(featurize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
