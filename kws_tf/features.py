"""The one definition of the log-mel features, in numpy (runtime and reference for training).

``kws_tf.train.features_tf`` is the TensorFlow twin used inside tf.data; a test proves the two
equal. Only numpy is imported here.
"""

from __future__ import annotations

import functools

import numpy as np

from kws_tf.config import FeatureConfig


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def mel_matrix(cfg: FeatureConfig) -> np.ndarray:
    """Triangular HTK-mel filterbank (the same construction as ``tf.signal.linear_to_mel_weight_matrix``).

    Returns:
        ``(fft_size // 2 + 1, n_mels)`` float32; the DC bin has zero weight.
    """
    n_bins = cfg.fft_size // 2 + 1
    bin_mel = _hz_to_mel(np.linspace(0.0, cfg.sample_rate_hz / 2.0, n_bins))[1:]
    edges = np.linspace(_hz_to_mel(cfg.fmin_hz), _hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower) / (center - lower)
    falling = (upper - bin_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(weights, [[1, 0], [0, 0]]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window, ``(n,)`` float32 (as ``tf.signal.hann_window(n, periodic=True)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def log_mel(audio: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram of mono audio.

    Args:
        audio: ``(samples,)`` float32 in [-1, 1] at ``cfg.sample_rate_hz``.
        cfg: feature settings.

    Returns:
        ``(cfg.n_frames(samples), n_mels)`` float32; frame ``i`` covers samples
        ``[i * hop, i * hop + window)``.
    """
    audio = np.asarray(audio, dtype=np.float32)
    n_frames = cfg.n_frames(audio.shape[-1])
    if n_frames == 0:
        return np.zeros((0, cfg.n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, cfg.window_samples)[:: cfg.hop_samples][:n_frames]
    if cfg.remove_dc:
        frames = frames - frames.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(frames * hann_window(cfg.window_samples), n=cfg.fft_size)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return np.log(power @ mel_matrix(cfg) + np.float32(cfg.log_floor)).astype(np.float32)
