"""Deterministic stand-ins for the two models, for runtime tests without TensorFlow or TFLite files.

Each "word" is a pure tone; the fake keyword model fires on output frames where the keyword tone just
ended, and the fake word model names the tone that fills most of its 1 s window.
"""

from __future__ import annotations

import numpy as np

from kws_tf.config import DecoderConfig, DetectorConfig, FeatureConfig
from kws_tf.features import mel_matrix
from kws_tf.runtime import Transcriber

SR = 16000
TONES_HZ = {"stop": 3000.0, "one": 500.0, "two": 1000.0, "three": 1500.0}
LABELS = ["_silence_", "one", "two", "three", "stop"]
KWS_FRAMES, KERNEL, STRIDE, WORD_FRAMES = 998, 15, 4, 98


def _tone_bins(cfg: FeatureConfig) -> dict[str, int]:
    weights = mel_matrix(cfg)
    return {w: int(np.argmax(weights[int(round(hz / SR * cfg.fft_size))])) for w, hz in TONES_HZ.items()}


def dominant(features: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``(frames,)`` object array: the tone word each frame is dominated by, or '' for quiet."""
    bins = _tone_bins(cfg)
    names = list(bins)
    values = features[:, [bins[n] for n in names]]
    best = np.argmax(values, axis=1)
    out = np.array([names[i] for i in best], dtype=object)
    out[values.max(axis=1) < 0.0] = ""
    return out


def fake_kws(cfg: FeatureConfig):
    def run(features: np.ndarray) -> np.ndarray:
        assert features.shape == (KWS_FRAMES, cfg.n_mels), features.shape
        is_kw = dominant(features, cfg) == "stop"
        n_out = (KWS_FRAMES - KERNEL) // STRIDE + 1
        probs = np.zeros(n_out, np.float32)
        for j in range(n_out):
            win = is_kw[j * STRIDE:j * STRIDE + KERNEL]
            probs[j] = 0.95 if win[: KERNEL // 2].any() and not win[-3:].any() else 0.02
        return probs
    return run


def fake_words(cfg: FeatureConfig):
    def run(features: np.ndarray) -> np.ndarray:
        assert features.shape == (WORD_FRAMES, cfg.n_mels), features.shape
        dom = dominant(features, cfg)
        counts = np.array([np.sum(dom == lab) for lab in LABELS], float)
        probs = np.full(len(LABELS), 0.02, np.float32)
        best = int(np.argmax(counts[1:])) + 1
        probs[best if counts[best] >= 25 else 0] = 0.92
        return probs / probs.sum()
    return run


def fake_transcriber(mode: str = "gated", detector: DetectorConfig = DetectorConfig(),
                     decoder: DecoderConfig = DecoderConfig(), keyword: str = "stop", verifier=None) -> Transcriber:
    """``verifier``: an optional separate verifier runner over ``LABELS``."""
    cfg = FeatureConfig()
    return Transcriber(cfg, fake_kws(cfg), KWS_FRAMES, KERNEL, STRIDE, fake_words(cfg), WORD_FRAMES, LABELS,
                       detector, decoder, mode, keyword=keyword, verifier_runner=verifier,
                       verifier_labels=LABELS if verifier is not None else None)


def synth(parts: list[tuple[str, float]], seed: int = 0, level: float = 0.3) -> np.ndarray:
    """Concatenate ``(word or '' for silence, seconds)`` parts; faint noise everywhere."""
    rng = np.random.default_rng(seed)
    out = []
    for word, dur in parts:
        n = int(round(dur * SR))
        t = np.arange(n) / SR
        out.append(level * np.sin(2 * np.pi * TONES_HZ[word] * t) if word else np.zeros(n))
    audio = np.concatenate(out)
    return (audio + 1e-3 * rng.standard_normal(len(audio))).astype(np.float32)
