"""Synthesized evaluation audio: seeded, and the keyword times are where the keyword is; plus the
runtime's keyword score hook (no models, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf.evaluate import streams
from kws_tf.evaluate.streams import WordBank

SR = 16000
HZ = {"stop": 3000.0, "one": 500.0, "two": 1000.0}


def _bank(per_word: int = 3, noise: bool = True) -> WordBank:
    rng = np.random.default_rng(0)
    audio, words = [], []
    for word, hz in HZ.items():
        for _ in range(per_word):
            n = int(rng.uniform(0.3, 0.5) * SR)
            clip = np.zeros(SR, np.float32)
            start = int(rng.integers(1000, SR - n - 1000))
            clip[start:start + n] = 0.3 * np.sin(2 * np.pi * hz * np.arange(n) / SR) * np.hanning(n)
            audio.append(np.round(clip * 32767).astype(np.int16))
            words.append(word)
    bg = [(rng.standard_normal(5 * SR) * 0.05).astype(np.float32)] if noise else []
    return WordBank.build(np.stack(audio), words, bg)


def _dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * SR / len(x))


def test_bank_extents_cover_the_tone():
    bank = _bank()
    for clip, (s, e) in zip(bank.audio, bank.extents):
        loud = np.flatnonzero(np.abs(clip) > 0.05)
        assert s <= loud[0] / SR + 0.01 and e >= loud[-1] / SR - 0.01


def test_keyword_stream_is_seeded_and_keywords_are_where_the_audio_is():
    bank = _bank()
    a = list(streams.keyword_stream(bank, "stop", minutes=1.5, seed=3, segment_s=60.0))
    b = list(streams.keyword_stream(bank, "stop", minutes=1.5, seed=3, segment_s=60.0))
    c = list(streams.keyword_stream(bank, "stop", minutes=1.5, seed=4, segment_s=60.0))
    assert [s for s, _ in a] == [0.0, 60.0] and len(a[1][1].audio) == 30 * SR
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)
        np.testing.assert_array_equal(x.keyword_spans, y.keyword_spans)
    assert not np.array_equal(a[0][1].audio, c[0][1].audio)
    n_kw = 0
    for _, seg in a:
        assert len(seg.keyword_spans) == sum(w == "stop" for w, _, _ in seg.words)
        for s, e in seg.keyword_spans:
            assert _dominant_hz(seg.audio[int(s * SR):int(e * SR)]) == pytest.approx(3000.0, abs=30)
            n_kw += 1
        for word, s, e in seg.words:
            assert _dominant_hz(seg.audio[int(s * SR):int(e * SR)]) == pytest.approx(HZ[word], abs=30)
        starts = [s for _, s, _ in seg.words]
        assert starts == sorted(starts) and np.all(np.diff(starts) >= 1.0 + streams.STREAM_GAP_S[0] - 1.0)
    assert n_kw >= 1


def test_mix_sets_the_snr():
    bank = _bank(noise=False)  # white-noise fallback
    rng = np.random.default_rng(0)
    m = streams.mix(bank, [(0, 1.0)], 3.0, "stop", rng, snr_db=(10.0, 10.0), noise_level_db=(-30.0, -30.0))
    s, e = m.words[0][1:]
    noise = np.concatenate([m.audio[: int(0.9 * SR)], m.audio[int(2.1 * SR):]])
    noise_rms = np.sqrt(np.mean(noise.astype(np.float64) ** 2))
    assert 20 * np.log10(noise_rms) == pytest.approx(-30.0, abs=0.5)
    seg = m.audio[int(s * SR):int(e * SR)]
    speech_rms = np.sqrt(max(np.mean(seg.astype(np.float64) ** 2) - noise_rms**2, 1e-12))
    assert 20 * np.log10(speech_rms / noise_rms) == pytest.approx(10.0, abs=1.0)


def test_add_noise_at_snr_is_seeded():
    bank = _bank()
    idx = np.arange(3)
    x = streams.add_noise(bank, idx, 5.0, seed=1)
    np.testing.assert_array_equal(x, streams.add_noise(bank, idx, 5.0, seed=1))
    noise = x - bank.audio[idx]
    ratio = bank.speech_rms[idx] / np.sqrt(np.mean(noise.astype(np.float64) ** 2, axis=1))
    np.testing.assert_allclose(20 * np.log10(ratio), 5.0, atol=0.3)


def test_sentences_reference_is_the_words_after_the_keyword():
    bank = _bank()
    items = streams.sentences(bank, "stop", {"one", "two", "stop"}, n_with=6, n_without=3, seed=0)
    assert [s.has_keyword for s in items] == [True] * 6 + [False] * 3
    for s in items:
        spoken = [w for w, _, _ in s.mixture.words]
        assert len(s.mixture.audio) == 10 * SR and s.mixture.words[-1][2] <= 10.0
        if s.has_keyword:
            assert spoken.count("stop") == 1 and 2 <= len(s.reference) <= 4
            assert spoken[spoken.index("stop") + 1:] == s.reference
        else:
            assert "stop" not in spoken and spoken == s.reference and 3 <= len(spoken) <= 5
    # Fewer sentences (the peer's share) are the same first ones.
    fewer = streams.sentences(bank, "stop", {"one", "two"}, n_with=2, n_without=1, seed=0)
    np.testing.assert_array_equal(fewer[1].mixture.audio, items[1].mixture.audio)
    np.testing.assert_array_equal(fewer[2].mixture.audio, items[6].mixture.audio)


def test_training_like_clips_have_at_most_three_keywords():
    bank = _bank()
    clips = list(streams.training_like_clips(bank, "stop", 20, seed=0))
    assert all(len(c.keyword_spans) <= 3 and len(c.audio) == 10 * SR for c in clips)
    assert sum(len(c.keyword_spans) for c in clips) > 0


def test_keyword_score_hook_is_chunk_invariant():
    from runtime_fakes import fake_transcriber, synth

    audio = synth([("", 1.0), ("stop", 0.5), ("", 0.5), ("one", 0.6), ("", 2.0)])
    traces = []
    for chunk in (len(audio), 1000, 160):
        tr = fake_transcriber()
        got = []
        tr.on_kws_scores = lambda t, p: got.append((np.asarray(t).copy(), np.asarray(p).copy()))
        events = []
        for lo in range(0, len(audio), chunk):
            events += tr.feed(audio[lo:lo + chunk])
        events += tr.finish()
        t = np.concatenate([g[0] for g in got])
        p = np.concatenate([g[1] for g in got])
        assert np.all(np.diff(t) > 0)
        traces.append((t, p, [e.time_s for e in events if e.kind == "keyword"]))
    for t, p, kw in traces[1:]:
        np.testing.assert_array_equal(t, traces[0][0])
        np.testing.assert_array_equal(p, traces[0][1])
        assert kw == traces[0][2]
    # Replaying the trace through the detector gives the runtime's own detections.
    from kws_tf.evaluate.metrics import detections

    t, p, kw = traces[0]
    assert kw and detections(t, p, fake_transcriber().detector_cfg, fake_transcriber().detector_cfg.threshold) == pytest.approx(kw)
