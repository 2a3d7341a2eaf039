"""One definition of the features: numpy reference, streaming, and the TensorFlow twin agree."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf.config import FeatureConfig
from kws_tf.features import log_mel, mel_matrix
from kws_tf.runtime import _GroupedLogMel


def test_shapes_and_frame_count():
    cfg = FeatureConfig()
    assert cfg.window_samples == 400 and cfg.hop_samples == 160
    assert log_mel(np.zeros(16000, np.float32), cfg).shape == (98, 40)
    assert log_mel(np.zeros(160000, np.float32), cfg).shape == (998, 40)
    assert log_mel(np.zeros(100, np.float32), cfg).shape == (0, 40)


def test_remove_dc_takes_a_constant_offset_out_of_the_features():
    """With remove_dc a DC offset leaves the floor of digital silence, and speech-band content keeps its features."""
    on, off = FeatureConfig(remove_dc=True), FeatureConfig()
    dc = np.full(16000, 0.05, np.float32)
    np.testing.assert_allclose(log_mel(dc, on), np.log(on.log_floor), rtol=1e-5)
    assert log_mel(dc, off).max() > 0.0  # without it the offset leaks into the lowest mel bins
    tone = (0.1 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype(np.float32)
    np.testing.assert_allclose(log_mel(tone + 0.05, on), log_mel(tone, off), atol=0.05)


def test_silence_is_log_floor():
    cfg = FeatureConfig()
    np.testing.assert_allclose(log_mel(np.zeros(1000, np.float32), cfg), np.log(cfg.log_floor), rtol=1e-6)


@pytest.mark.parametrize("remove_dc", [False, True])
@pytest.mark.parametrize("block", [1, 160, 999, 16000])
def test_streaming_equals_whole(block, remove_dc):
    """The runtime's streaming front end gives the frames of the whole signal, bit-identical whatever the blocks."""
    cfg = FeatureConfig(remove_dc=remove_dc)
    audio = np.random.default_rng(0).standard_normal(20000).astype(np.float32) * 0.1 + 0.02

    def streamed(size: int) -> np.ndarray:
        stream = _GroupedLogMel(cfg, group=4)
        return np.concatenate([g for i in range(0, len(audio), size) for g in stream.push(audio[i : i + size])])

    frames, whole = streamed(block), log_mel(audio, cfg)
    assert frames.shape == (len(whole) // 4 * 4, cfg.n_mels)  # every complete group of 4 frames
    np.testing.assert_allclose(frames, whole[: len(frames)], atol=1e-4)
    np.testing.assert_array_equal(frames, streamed(16000 + 7))


@pytest.mark.parametrize("remove_dc", [False, True])
def test_tensorflow_twin_matches_numpy(remove_dc):
    tf = pytest.importorskip("tensorflow")
    from kws_tf.train.features_tf import log_mel_tf

    cfg = FeatureConfig(remove_dc=remove_dc)
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal((3, 16000)) * [[0.3], [0.001], [0.05]] + [[0.0], [0.02], [0.0]]).astype(np.float32)
    audio[2, :8000] = 0
    ours = np.stack([log_mel(a, cfg) for a in audio])
    np.testing.assert_allclose(log_mel_tf(tf.constant(audio), cfg).numpy(), ours, atol=1e-4)
    reference = tf.signal.linear_to_mel_weight_matrix(cfg.n_mels, cfg.fft_size // 2 + 1, cfg.sample_rate_hz, cfg.fmin_hz, cfg.fmax_hz)
    np.testing.assert_allclose(mel_matrix(cfg), reference.numpy(), atol=1e-5)
