"""TensorFlow twin of ``kws_tf.features.log_mel`` for tf.data; a test proves the two equal.

The mel matrix comes from the numpy definition (``features.mel_matrix``), so there is one source of its numbers; the
window is TensorFlow's periodic Hann, the same numbers as ``features.hann_window`` (the twin test compares the outputs).
"""

from __future__ import annotations

import tensorflow as tf

from kws_tf.config import FeatureConfig
from kws_tf.features import mel_matrix
from kws_tf.train.augment import frequency_warp


def log_mel_tf(audio: tf.Tensor, cfg: FeatureConfig, warp: tf.Tensor | None = None) -> tf.Tensor:
    """Log-mel spectrogram.

    Args:
        audio: ``(..., samples)`` float32 in [-1, 1].
        warp: training augmentation only: ``(B,)`` frequency warp factors for a batch ``(B, samples)``
            (``augment.frequency_warp``); None computes the plain features.

    Returns:
        ``(..., frames, n_mels)`` float32, equal to ``kws_tf.features.log_mel`` per signal.
    """
    # tf.signal.stft spelled out (frame, window, rfft), so each frame's mean can come off before the window
    frames = tf.signal.frame(audio, cfg.window_samples, cfg.hop_samples, pad_end=False)
    if cfg.remove_dc:
        frames -= tf.reduce_mean(frames, axis=-1, keepdims=True)
    stft = tf.signal.rfft(frames * tf.signal.hann_window(cfg.window_samples, periodic=True), [cfg.fft_size])
    power = tf.math.square(tf.math.real(stft)) + tf.math.square(tf.math.imag(stft))
    if warp is not None:
        power = frequency_warp(power, warp)
    mel = tf.tensordot(power, tf.constant(mel_matrix(cfg)), axes=1)
    return tf.math.log(mel + cfg.log_floor)
