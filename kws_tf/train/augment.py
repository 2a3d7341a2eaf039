"""Per-example audio augmentation in TensorFlow with stateless random ops (seeded per element):
gain, time shift, speed perturbation, reverb (synthetic room impulse responses), background noise
at a random SNR (by RMS), SpecAugment, frequency warping (VTLP)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _uniform(seed: tf.Tensor, low: float, high: float, shape=()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1) + 1e-12)


class NoiseBank:
    """All background noise recordings as one flat float32 tensor with per-file start/length, each
    file tiled to at least ``min_samples`` so any crop fits inside one file."""

    def __init__(self, noise: list[np.ndarray], min_samples: int) -> None:
        if not noise:  # no background folder: white noise stands in
            noise = [np.random.default_rng(0).standard_normal(min_samples * 2).astype(np.float32) * 0.1]
        tiled = [np.tile(n, int(np.ceil((min_samples + 1) / max(len(n), 1)))) for n in noise]
        self.lengths = tf.constant([len(n) for n in tiled], tf.int32)
        self.starts = tf.constant(np.cumsum([0] + [len(n) for n in tiled[:-1]]), tf.int32)
        self.audio = tf.constant(np.concatenate(tiled).astype(np.float32))

    def crop(self, seed: tf.Tensor, n_samples: int) -> tf.Tensor:
        """A random ``(n_samples,)`` crop of a random file, scaled to unit RMS."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        file = tf.random.stateless_uniform((), seeds[0], 0, tf.shape(self.lengths)[0], dtype=tf.int32)
        offset = tf.random.stateless_uniform((), seeds[1], 0, self.lengths[file] - n_samples + 1, dtype=tf.int32)
        crop = self.audio[self.starts[file] + offset : self.starts[file] + offset + n_samples]
        crop = crop - tf.reduce_mean(crop)
        return crop / rms(crop)


def mix_at_snr(speech: tf.Tensor, noise_unit: tf.Tensor, snr_db: tf.Tensor) -> tf.Tensor:
    """Add unit-RMS noise so that RMS(speech) / RMS(noise) equals ``snr_db``."""
    return speech + noise_unit * rms(speech) / tf.pow(10.0, snr_db / 20.0)


def time_shift(audio: tf.Tensor, seed: tf.Tensor, max_shift: int) -> tf.Tensor:
    """Shift ``(samples,)`` by a random amount in [-max_shift, max_shift], filling with zeros."""
    n = tf.shape(audio)[0]
    shift = tf.random.stateless_uniform((), seed, -max_shift, max_shift + 1, dtype=tf.int32)
    padded = tf.pad(audio, [[max_shift, max_shift]])
    return padded[max_shift - shift : max_shift - shift + n]


def edge_fragment(other: tf.Tensor, speech_start: tf.Tensor, speech_end: tf.Tensor, overlap: tf.Tensor, at_end: tf.Tensor) -> tf.Tensor:
    """The edge of a neighbouring word for a ``(samples,)`` window, zeros elsewhere: with ``at_end``, the
    first ``overlap`` samples of ``other``'s speech (from sample ``speech_start``) fill the window's last
    ``overlap`` samples (the next word starting), else the last ``overlap`` samples before ``speech_end``
    fill its first ones (the previous word ending). ``other`` has the window's length."""
    n = tf.shape(other)[0]
    p = tf.range(n)
    src = p - tf.where(at_end, n - overlap - speech_start, overlap - speech_end)
    inside = tf.where(at_end, p >= n - overlap, p < overlap) & (src >= 0) & (src < n)
    return tf.where(inside, tf.gather(other, tf.clip_by_value(src, 0, n - 1)), 0.0)


def speed_perturb(audio: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Play ``(..., samples)`` ``factor`` times faster (tempo and pitch, like ``sox speed``) by linear
    interpolation around the centre, keeping the length (cropped or zero-padded). ``factor`` has the
    shape of ``audio`` without its last axis. A point at ``t`` moves to ``c + (t - c) / factor``."""
    n = tf.shape(audio)[-1]
    nf = tf.cast(n, tf.float32)
    # Output sample j reads input position centre + (j - centre) * factor.
    pos = nf / 2.0 + (tf.range(nf) - nf / 2.0) * factor[..., None]
    valid = tf.cast((pos >= 0.0) & (pos <= nf - 1.0), tf.float32)
    pos = tf.clip_by_value(pos, 0.0, nf - 1.0)
    lo = tf.cast(tf.floor(pos), tf.int32)
    hi = tf.minimum(lo + 1, n - 1)
    frac = pos - tf.floor(pos)
    batch_dims = len(audio.shape) - 1
    gather = lambda idx: tf.gather(audio, idx, batch_dims=batch_dims)
    return (gather(lo) * (1.0 - frac) + gather(hi) * frac) * valid


def synthetic_rir(seed: tf.Tensor, rt60_s: tf.Tensor, drr_db: tf.Tensor, n_samples: int, sample_rate_hz: int) -> tf.Tensor:
    """A ``(n_samples,)`` room impulse response: a unit direct path, then a diffuse tail of white
    noise decaying by 60 dB over ``rt60_s`` whose energy sits ``drr_db`` below the direct path's."""
    t = tf.range(1, n_samples, dtype=tf.float32) / float(sample_rate_hz)
    tail = tf.random.stateless_normal((n_samples - 1,), seed) * tf.exp(-6.9078 * t / rt60_s)  # ln(1000): 60 dB
    tail *= tf.pow(10.0, -drr_db / 20.0) / tf.sqrt(tf.reduce_sum(tf.square(tail)) + 1e-12)
    return tf.concat([[1.0], tail], axis=0)


def reverberate(audio: tf.Tensor, rir: tf.Tensor) -> tf.Tensor:
    """``(samples,)`` convolved with ``rir`` (by FFT, cut to the input length), at the input's RMS."""
    n = int(audio.shape[-1]) + int(rir.shape[-1])
    fft_n = 1 << (n - 1).bit_length()
    wet = tf.signal.irfft(tf.signal.rfft(audio, [fft_n]) * tf.signal.rfft(rir, [fft_n]), [fft_n])[: audio.shape[-1]]
    return wet * rms(audio) / rms(wet)


def spec_augment(features: tf.Tensor, seed: tf.Tensor, freq_mask_bins: int, time_mask_frames: int) -> tf.Tensor:
    """One frequency mask and one time mask on ``(frames, n_mels)``, filled with the mean value."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    frames, mels = tf.shape(features)[0], tf.shape(features)[1]
    fill = tf.reduce_mean(features)

    def band(length: tf.Tensor, width_max: int, s1, s2) -> tf.Tensor:
        width = tf.random.stateless_uniform((), s1, 0, width_max + 1, dtype=tf.int32)
        start = tf.random.stateless_uniform((), s2, 0, tf.maximum(length - width, 0) + 1, dtype=tf.int32)
        idx = tf.range(length)
        return (idx >= start) & (idx < start + width)

    f_mask = band(mels, freq_mask_bins, seeds[0], seeds[1])[None, :]
    t_mask = band(frames, time_mask_frames, seeds[2], seeds[3])[:, None]
    return tf.where(f_mask | t_mask, fill, features)


def freq_mask(features: tf.Tensor, seed: tf.Tensor, n_masks: int, max_bins: int) -> tf.Tensor:
    """SpecAugment frequency masks on a batch ``(B, frames, n_mels)``: per example ``n_masks`` bands
    of 0..``max_bins`` mel bins at random places, each over all frames, filled with the example's mean."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch, mels = tf.shape(features)[0], tf.shape(features)[2]
    width = tf.floor(tf.random.stateless_uniform((batch, n_masks), seeds[0], 0.0, max_bins + 1.0))
    start = tf.floor(tf.random.stateless_uniform((batch, n_masks), seeds[1]) * (tf.cast(mels, tf.float32) - width + 1.0))
    idx = tf.cast(tf.range(mels), tf.float32)[None, None, :]
    masked = tf.reduce_any((idx >= start[..., None]) & (idx < (start + width)[..., None]), axis=1)  # (B, n_mels)
    fill = tf.reduce_mean(features, axis=[1, 2], keepdims=True)
    return tf.where(masked[:, None, :], fill, features)


def frequency_warp(power: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Vocal tract length perturbation (Jaitly & Hinton, 2013) on a power spectrogram ``(B, frames, bins)``:
    bin ``k`` of example ``b`` takes the power at frequency ``k / alpha[b]`` (linear interpolation; above the
    Nyquist bin, the Nyquist bin's power), so ``alpha`` > 1 moves formants up, as a shorter vocal tract
    would, without changing the tempo (speed perturbation moves both)."""
    bins = tf.shape(power)[-1]
    top = tf.cast(bins - 1, tf.float32)
    src = tf.minimum(tf.cast(tf.range(bins), tf.float32)[None, :] / alpha[:, None], top)  # (B, bins)
    low = tf.floor(src)
    frac = (src - low)[:, None, :]
    low = tf.cast(low, tf.int32)
    high = tf.minimum(low + 1, bins - 1)
    return (1.0 - frac) * tf.gather(power, low, axis=2, batch_dims=1) + frac * tf.gather(power, high, axis=2, batch_dims=1)


def warp_factors(seed: tf.Tensor, count: tf.Tensor, max_warp: float) -> tf.Tensor:
    """``(count,)`` factors for ``frequency_warp``, uniform in 1 +- ``max_warp``."""
    return tf.random.stateless_uniform(tf.reshape(count, [1]), seed, 1.0 - max_warp, 1.0 + max_warp)
