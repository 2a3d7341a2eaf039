"""tf.data pipelines of 1 s word examples: balanced class sampling (real and synthetic clips mixed
with a weight), gain, speed and time shift, reverb, background noise at a random SNR, log-mel,
SpecAugment, optional mixup."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kws_tf.config import FeatureConfig, WordDataConfig
from kws_tf.dataset import speech_extents
from kws_tf.train.augment import NoiseBank, edge_fragment, mix_at_snr, reverberate, spec_augment, speed_perturb, synthetic_rir, time_shift, warp_factors
from kws_tf.train.features_tf import log_mel_tf


def class_tables(labels: np.ndarray, mask: np.ndarray, n_classes: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Flat index table grouped by class with per-class start and count."""
    groups = [np.flatnonzero((labels == c) & mask) for c in range(n_classes)]
    flat = np.concatenate(groups + [np.zeros(1, np.int64)]).astype(np.int32)  # one pad entry keeps gathers valid
    counts = np.array([len(g) for g in groups], np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return tf.constant(flat), tf.constant(starts), tf.constant(counts)


def synthetic_weights(real_counts: np.ndarray, weight: float, taper_clips: int = 0) -> np.ndarray:
    """Per-class probability of drawing a synthetic clip when a class has both kinds: ``weight`` for
    every class, or with ``taper_clips`` M > 0, ``weight * M / n`` for a class with n > M real clips, so
    words with many real clips lean on them (a class with <= M real clips keeps ``weight``)."""
    n = np.asarray(real_counts, np.float64)
    if taper_clips <= 0:
        return np.full(n.shape, weight, np.float32)
    return (weight * np.minimum(1.0, taper_clips / np.maximum(n, 1.0))).astype(np.float32)


def word_train_dataset(
    audio: np.ndarray,
    labels: np.ndarray,
    is_synthetic: np.ndarray,
    *,
    n_words: int,
    noise: NoiseBank,
    features: FeatureConfig,
    word: WordDataConfig,
    batch_size: int,
    seed: int,
    synthetic_weight: float | np.ndarray = 0.5,
    keyword_class: int | None = None,
    confusable_classes: list[int] | None = None,
) -> tf.data.Dataset:
    """Endless, seeded batches of ``((B, frames, n_mels) float32, (B,) int32)``.

    Classes are drawn uniformly (the data is very uneven), or with ``word.class_power`` p > 0 in
    proportion to (clips of the class)^p, plus ``_silence_`` (label ``n_words``) with probability
    ``word.silence_fraction``; with ``word.keyword_share`` s > 0, a word example is ``keyword_class``
    with probability s, else drawn as above, or with ``word.confusable_prob`` c > 0 one of
    ``confusable_classes`` (uniformly) with probability c. Within a class a synthetic clip is drawn with
    probability ``synthetic_weight`` (one number, or one per class: ``synthetic_weights``) when the class
    has both kinds.
    """
    if word.keyword_share > 0 and keyword_class is None:
        raise ValueError("word_data.keyword_share needs the keyword among the words")
    if word.confusable_prob > 0 and not confusable_classes:
        raise ValueError("word_data.confusable_prob needs confusable words among the words")
    confusable_t = tf.constant(confusable_classes or [0], tf.int32)
    audio_t = tf.constant(audio)  # (N, samples) int16
    real = class_tables(labels, ~is_synthetic, n_words)
    synth = class_tables(labels, is_synthetic, n_words)
    synth_weight = tf.constant(np.broadcast_to(np.asarray(synthetic_weight, np.float32), (n_words,)))
    n_samples = audio.shape[1]
    clips = real[2].numpy().astype(np.float64) + synth[2].numpy()
    class_logits = tf.constant([word.class_power * np.log(np.maximum(clips, 1.0))], tf.float32)  # (1, n_words)
    max_shift = int(word.time_shift_s * features.sample_rate_hz)
    rir_n = int(word.reverb_rt60_s[1] * features.sample_rate_hz / 2)  # the tail is 30 dB down by then
    sr = features.sample_rate_hz
    if word.neighbour_prob > 0:  # each clip's spoken part (samples), where a neighbour's edge is taken from
        extents = speech_extents(audio, sr)
        speech_start, speech_end = (tf.constant(np.round(extents[:, k] * sr).astype(np.int32)) for k in (0, 1))

    def pick(table, cls, seed_):
        flat, starts, counts = table
        k = tf.random.stateless_uniform((), seed_, 0, tf.maximum(counts[cls], 1), dtype=tf.int32)
        return flat[starts[cls] + k]

    def example(i: tf.Tensor):
        s = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), i]), 10)
        silence = tf.random.stateless_uniform((), s[0]) < word.silence_fraction
        if word.class_power > 0:
            cls = tf.cast(tf.random.stateless_categorical(class_logits, 1, s[1])[0, 0], tf.int32)
        else:  # the same draws as before the option existed
            cls = tf.random.stateless_uniform((), s[1], 0, n_words, dtype=tf.int32)
        if word.confusable_prob > 0:  # draws of their own, so the other draws stay as without the option
            c = tf.random.experimental.stateless_split(s[2], 3)
            which = tf.random.stateless_uniform((), c[1], 0, tf.size(confusable_t), dtype=tf.int32)
            cls = tf.where(tf.random.stateless_uniform((), c[2]) < word.confusable_prob, confusable_t[which], cls)
        if word.keyword_share > 0:  # a draw of its own, so the other draws stay as without the option
            boost = tf.random.stateless_uniform((), tf.random.experimental.stateless_split(s[1], 2)[1]) < word.keyword_share
            cls = tf.where(boost, keyword_class, cls)
        use_synth = (synth[2][cls] > 0) & ((real[2][cls] == 0) | (tf.random.stateless_uniform((), s[2]) < synth_weight[cls]))
        idx = tf.where(use_synth, pick(synth, cls, s[3]), pick(real, cls, s[3]))
        x = tf.cast(audio_t[idx], tf.float32) / 32768.0
        gain = tf.pow(10.0, tf.random.stateless_uniform((), s[4], *word.gain_db) / 20.0)
        x = speed_perturb(x * gain, tf.random.stateless_uniform((), s[5], *word.speed))
        x = tf.ensure_shape(time_shift(x, s[6], max_shift), (n_samples,))
        if word.neighbour_prob > 0:  # draws of their own, so the other draws stay as without the option
            r = tf.random.experimental.stateless_split(s[8], 5)
            j = tf.random.stateless_uniform((), r[0], 0, len(audio), dtype=tf.int32)
            overlap = tf.cast(tf.random.stateless_uniform((), r[1], *word.neighbour_overlap_s) * sr, tf.int32)
            other = tf.cast(audio_t[j], tf.float32) / 32768.0 * gain * tf.pow(10.0, tf.random.stateless_uniform((), r[2], *word.neighbour_gain_db) / 20.0)
            edge = edge_fragment(other, speech_start[j], speech_end[j], overlap, tf.random.stateless_uniform((), r[3]) < word.neighbour_at_end)
            x = tf.where(tf.random.stateless_uniform((), r[4]) < word.neighbour_prob, x + edge, x)
        if word.reverb_prob > 0:
            r = tf.random.experimental.stateless_split(s[6], 4)
            rt60 = tf.random.stateless_uniform((), r[1], *word.reverb_rt60_s)
            drr = tf.random.stateless_uniform((), r[2], *word.reverb_drr_db)
            wet = lambda: reverberate(x, synthetic_rir(r[0], rt60, drr, rir_n, features.sample_rate_hz))
            # tf.cond, not tf.where: the RIR and the convolution are made only for examples that get reverb.
            x = tf.cond(tf.random.stateless_uniform((), r[3]) < word.reverb_prob, wet, lambda: x)
        noise_unit = noise.crop(s[7], n_samples)
        add_noise = tf.random.stateless_uniform((), s[8]) < word.noise_prob
        snr = tf.random.stateless_uniform((), s[9], *word.snr_db)
        x = tf.where(add_noise, mix_at_snr(x, noise_unit, snr), x)
        level = tf.pow(10.0, tf.random.stateless_uniform((), s[9], *word.silence_db) / 20.0)
        x = tf.where(silence, noise_unit * level, x)
        return x, tf.where(silence, n_words, cls), i

    def featurize(x, y, i):
        warp = None
        if word.freq_warp > 0:
            warp = warp_factors(tf.stack([tf.cast(seed, tf.int64) + 3, i[0]]), tf.shape(i)[0], word.freq_warp)
        feats = log_mel_tf(x, features, warp)
        if word.specaugment:
            seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64) + 1, i[0]]), tf.shape(i)[0])
            feats = tf.map_fn(
                lambda args: spec_augment(args[0], args[1], word.freq_mask_bins, word.time_mask_frames),
                (feats, seeds),
                fn_output_signature=tf.float32,
            )
        return feats, y

    return (
        tf.data.Dataset.counter()
        .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .map(featurize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def mixup_batches(ds: tf.data.Dataset, *, n_classes: int, alpha: float, seed: int) -> tf.data.Dataset:
    """``word_train_dataset``'s batches with mixup: labels become mixed one-hot rows,
    ``(B, n_classes) float32``. The batch's position in the stream seeds its weights."""
    return ds.enumerate().map(
        lambda b, xy: mixup(*xy, n_classes=n_classes, alpha=alpha, seed=tf.stack([tf.cast(seed, tf.int64) + 2, b])),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).prefetch(tf.data.AUTOTUNE)


def one_hot_batches(ds: tf.data.Dataset, *, n_classes: int) -> tf.data.Dataset:
    """``word_train_dataset``'s batches with one-hot label rows ``(B, n_classes) float32`` (for a loss that
    smooths them), examples unchanged."""
    return ds.map(lambda x, y: (x, tf.one_hot(y, n_classes)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def mixup(feats: tf.Tensor, labels: tf.Tensor, n_classes: int, alpha: float, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Blend each example with its neighbour in the (randomly drawn) batch: ``lam * x_i + (1 - lam) *
    x_{i+1}``, ``lam ~ Beta(alpha, alpha)`` per example, and the one-hot labels the same way."""
    s = tf.random.experimental.stateless_split(seed, 2)
    n = tf.shape(feats)[0]
    g1 = tf.random.stateless_gamma((n,), s[0], alpha)
    g2 = tf.random.stateless_gamma((n,), s[1], alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    onehot = tf.one_hot(labels, n_classes)
    mixed_x = lam[:, None, None] * feats + (1.0 - lam[:, None, None]) * tf.roll(feats, 1, axis=0)
    mixed_y = lam[:, None] * onehot + (1.0 - lam[:, None]) * tf.roll(onehot, 1, axis=0)
    return mixed_x, mixed_y


def word_eval_arrays(
    audio: np.ndarray, labels: np.ndarray, *, n_words: int, noise: NoiseBank, features: FeatureConfig, n_silence: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clean evaluation examples plus ``n_silence`` noise-only ones: ``((N, frames, n_mels), (N,))``."""
    x = tf.cast(tf.constant(audio), tf.float32) / 32768.0
    n_samples = audio.shape[1]
    silence = [noise.crop(tf.constant([seed, k], tf.int64), n_samples) * 10 ** (-(20 + 40 * (k % 5) / 4) / 20) for k in range(n_silence)]
    if silence:
        x = tf.concat([x, tf.stack(silence)], axis=0)
    y = np.concatenate([labels, np.full(n_silence, n_words)]).astype(np.int32)
    feats = tf.concat([log_mel_tf(x[i : i + 512], features) for i in range(0, int(x.shape[0]), 512)], axis=0)
    return feats.numpy(), y
