"""The word model's second opinion on keyword detections: the rule, the runtime, chunk invariance,
and the evaluation replay reproducing the runtime's verified detections."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf.config import DetectorConfig
from kws_tf.decisions import KeywordDetector, verify_score, verify_scores_at
from kws_tf.evaluate import metrics
from kws_tf.config import FeatureConfig
from kws_tf.runtime import Transcriber
from runtime_fakes import KERNEL, KWS_FRAMES, LABELS, STRIDE, WORD_FRAMES, fake_kws, fake_transcriber, fake_words, synth

# The stand-in keyword model fires after any "stop" tone; the stand-in word model only names a tone
# that fills at least 25 frames of its window, so a 0.15 s blip is a keyword false alarm that the
# word model does not confirm.
SPEECH = [("", 1.2), ("stop", 0.6), ("", 1.5), ("one", 0.5), ("", 1.0), ("stop", 0.15), ("", 1.5), ("two", 0.5), ("", 1.0)]
DETECTOR = DetectorConfig(threshold=0.5, smoothing_frames=1, patience_frames=1)


def test_verify_rule_keeps_detections_with_a_confident_window_just_before():
    cfg = DetectorConfig(verify_threshold=0.5, verify_window_s=0.5)
    ends = np.array([1.0, 1.1, 1.2, 1.3, 2.0, 2.1])
    probs = np.array([0.1, 0.8, 0.3, 0.1, 0.2, 0.4])
    assert verify_score(ends, probs, 1.3, cfg) == pytest.approx(0.8)
    assert verify_score(ends, probs, 2.0, cfg) == pytest.approx(0.2)  # 1.3 is 0.7 s before: outside
    assert verify_score(ends, probs, 0.5, cfg) == 0.0  # no window yet
    times = np.arange(0.3, 2.6, 0.04)
    np.testing.assert_allclose(verify_scores_at(times, ends, probs, cfg), [verify_score(ends, probs, t, cfg) for t in times])


def gate(probs, verify, **cfg):
    """Detections on 40 ms frames with a verifier ``verify(t)``."""
    cfg = DetectorConfig(**{"threshold": 0.5, "smoothing_frames": 1, "refractory_s": 2.0, "verify_threshold": 0.5, **cfg})
    times = np.arange(1, len(probs) + 1) * 0.04
    return KeywordDetector(cfg).update(times, np.asarray(probs, np.float32), verify)


def test_an_unconfirmed_frame_leaves_the_gate_armed_for_the_next_ones():
    """The keyword model crosses the threshold early in the word, before a word window holds all of
    it: the word model confirms only from 0.6 s on, and the gate opens there, not never."""
    probs = [0.0] * 10 + [0.9] * 10 + [0.0] * 10  # above the threshold from 0.44 s to 0.80 s
    events = gate(probs, lambda t: 0.9 if t >= 0.6 else 0.0)
    assert [round(e.time_s, 2) for e in events] == [0.6] and events[0].verify_score == pytest.approx(0.9)
    assert gate(probs, lambda t: 0.1) == []  # never confirmed: no detection
    assert len(gate(probs, lambda t: 0.1, verify_threshold=0.0)) == 1  # verification off


def test_a_rejected_candidate_does_not_start_the_refractory_period():
    """A false trigger the word model rejects, then the real keyword 1 s later (inside refractory_s
    of the false trigger): the keyword still opens the gate."""
    probs = [0.0] * 5 + [0.9] * 5 + [0.0] * 20 + [0.9] * 5 + [0.0] * 5
    events = gate(probs, lambda t: 0.9 if t > 1.0 else 0.0)
    assert [round(e.time_s, 2) for e in events] == [1.24]


def reference_gate(times, probs, cfg, verify):
    """The gate's rule frame by frame, as the class docstring states it (the class skips frames)."""
    events, history, above, armed, last = [], [], 0, True, -np.inf
    for t, p in zip(times, probs):
        history = (history + [float(p)])[-cfg.smoothing_frames:]
        smoothed = sum(history) / len(history)
        if smoothed < cfg.threshold:
            above, armed = 0, True
            continue
        above += 1
        if armed and above >= cfg.patience_frames and t - last >= cfg.refractory_s:
            if cfg.verify_threshold > 0 and verify(t) < cfg.verify_threshold:
                continue
            events.append(round(float(t), 6))
            armed, last = False, t
    return events


@pytest.mark.parametrize("verify_threshold", [0.0, 0.5])
@pytest.mark.parametrize("smoothing,patience", [(1, 1), (3, 2), (5, 4)])
def test_the_gate_follows_its_frame_by_frame_rule(smoothing, patience, verify_threshold):
    rng = np.random.default_rng(smoothing * 10 + patience)
    probs = np.clip(rng.normal(0.3, 0.35, 2000), 0, 1).astype(np.float32)
    times = np.arange(1, 2001) * 0.04
    cfg = DetectorConfig(threshold=0.5, smoothing_frames=smoothing, patience_frames=patience, refractory_s=0.6,
                         verify_threshold=verify_threshold)
    verify = lambda t: float(np.sin(3 * t) ** 2)
    got = [round(e.time_s, 6) for e in KeywordDetector(cfg).update(times, probs, verify)]
    assert len(got) >= 5 and got == reference_gate(times, probs, cfg, verify)


def test_block_splits_do_not_change_detections():
    rng = np.random.default_rng(0)
    probs = np.clip(rng.normal(0.3, 0.35, 600), 0, 1).astype(np.float32)
    times = np.arange(1, 601) * 0.04
    cfg = DetectorConfig(threshold=0.55, smoothing_frames=3, patience_frames=2, refractory_s=0.5, verify_threshold=0.5)
    verify = lambda t: float(np.sin(7 * t) ** 2)
    whole = KeywordDetector(cfg).update(times, probs, verify)
    det, pieces = KeywordDetector(cfg), []
    for a, b in [(0, 1), (1, 2), (2, 50), (50, 51), (51, 333), (333, 600)]:
        pieces += det.update(times[a:b], probs[a:b], verify)
    assert len(whole) > 5 and pieces == whole


def test_transcriber_drops_detections_the_word_model_rejects():
    audio = synth(SPEECH)
    plain = fake_transcriber("gated", DETECTOR).transcribe(audio)
    assert len(plain.keywords) == 2  # the blip fires the stand-in keyword model
    verified = fake_transcriber("gated", DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})).transcribe(audio)
    assert [round(k.time_s, 1) for k in verified.keywords] == [round(plain.keywords[0].time_s, 1)]
    assert verified.keywords[0].verify_score > 0.5
    assert verified.text == "one"  # "two" followed the rejected blip: no gate, no word
    assert "two" in plain.text


def _constant_verifier(stop_prob: float):
    """A stand-in verifier that gives "stop" ``stop_prob`` on every window and counts its calls."""
    calls = []

    def run(features: np.ndarray) -> np.ndarray:
        calls.append(1)
        probs = np.full(len(LABELS), (1.0 - stop_prob) / (len(LABELS) - 1), np.float32)
        probs[LABELS.index("stop")] = stop_prob
        return probs
    run.calls = calls
    return run


def test_a_separate_verifier_confirms_detections_and_the_word_model_still_transcribes():
    """With ``verifier_runner`` the gate asks the verifier, not the word model; the words after the
    keyword still come from the word model (a verifier that hears "stop" everywhere writes no "stop")."""
    audio = synth(SPEECH)
    cfg = DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})
    own = fake_transcriber("gated", cfg).transcribe(audio)
    assert len(own.keywords) == 1  # the word model rejects the blip
    eager = _constant_verifier(0.9)
    both = fake_transcriber("gated", cfg, verifier=eager).transcribe(audio)
    assert len(both.keywords) == 2 and [k.verify_score for k in both.keywords] == pytest.approx([0.9, 0.9])
    assert both.text == "one two" and len(eager.calls) > 0  # the word model wrote the words
    never = fake_transcriber("gated", cfg, verifier=_constant_verifier(0.1)).transcribe(audio)
    assert never.keywords == [] and never.text == ""


def test_a_verifier_without_the_keyword_leaves_detections_unverified(caplog):
    cfg = DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})
    tr = Transcriber(FeatureConfig(), fake_kws(FeatureConfig()), KWS_FRAMES, KERNEL, STRIDE, fake_words(FeatureConfig()),
                     WORD_FRAMES, LABELS, cfg, keyword="stop", verifier_runner=_constant_verifier(0.0),
                     verifier_labels=["_silence_", "one", "two"])
    assert "the verifier has no class 'stop'" in caplog.text
    assert len(tr.transcribe(synth(SPEECH)).keywords) == 2


def test_without_the_keyword_among_the_word_labels_detections_are_not_verified(caplog):
    cfg = DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})
    tr = fake_transcriber("gated", cfg, keyword="marvin")
    assert "not verified" in caplog.text
    assert len(tr.transcribe(synth(SPEECH)).keywords) == 2


@pytest.mark.parametrize("chunk", [160, 1000, 16000])
def test_verified_detections_do_not_depend_on_block_size(chunk):
    audio = synth(SPEECH)
    tr = fake_transcriber("gated", DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5}))
    reference = tr.transcribe(audio)
    # the first "stop" (1.2 s to 1.8 s) is confirmed, the blip is not
    assert len(reference.keywords) == 1 and 1.2 < reference.keywords[0].time_s < 2.0
    assert reference.keywords[0].verify_score > 0.5
    tr.reset()
    events = []
    for i in range(0, len(audio), chunk):
        events += tr.feed(audio[i:i + chunk])
    events += tr.finish()
    assert [e for e in events if e.kind == "keyword"] == reference.keywords


def test_replay_of_the_traces_matches_the_runtime():
    """What evaluation and tools/tune_detector.py compute from the traces is what the runtime does."""
    audio = synth(SPEECH)
    cfg = DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})
    runtime = [k.time_s for k in fake_transcriber("gated", cfg).transcribe(audio).keywords]
    assert len(runtime) == 1 and 1.2 < runtime[0] < 2.0  # the first "stop"; the blip is rejected
    tracer = fake_transcriber("gated", DetectorConfig(**{**cfg.__dict__, "threshold": 1.0001}))
    kt, kp, vt, vp = [], [], [], []
    tracer.on_kws_scores = lambda t, p: (kt.append(t), kp.append(p))
    tracer.on_verify_scores = lambda t, p: (vt.append(t), vp.append(p))
    tracer.transcribe(audio)
    assert tracer.trace_busy_s > 0
    t, p = np.concatenate(kt), np.concatenate(kp)
    verify = (np.concatenate(vt), np.concatenate(vp))
    assert len(verify[0]) > 50 and np.all(np.diff(verify[0]) > 0)
    assert metrics.detections(t, p, cfg, 0.5, verify) == pytest.approx(runtime)
    assert len(metrics.detections(t, p, cfg, 0.5)) == 2  # without the trace: unverified
