"""The word model's second opinion on keyword detections: the rule, the runtime, chunk invariance,
and the evaluation replay reproducing the runtime's verified detections."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf.config import DetectorConfig
from kws_tf.decisions import KeywordEvent, verify_detections, verify_score
from kws_tf.evaluate import metrics
from runtime_fakes import fake_transcriber, synth

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
    events = [KeywordEvent(1.3, 0.9), KeywordEvent(2.1, 0.95)]
    kept = verify_detections(events, ends, probs, cfg)
    assert [(e.time_s, e.verify_score) for e in kept] == [(1.3, pytest.approx(0.8))]
    assert verify_detections(events, ends, probs, DetectorConfig(verify_threshold=0.0)) == events


def test_transcriber_drops_detections_the_word_model_rejects():
    audio = synth(SPEECH)
    plain = fake_transcriber("gated", DETECTOR).transcribe(audio)
    assert len(plain.keywords) == 2  # the blip fires the stand-in keyword model
    verified = fake_transcriber("gated", DetectorConfig(**{**DETECTOR.__dict__, "verify_threshold": 0.5})).transcribe(audio)
    assert [round(k.time_s, 1) for k in verified.keywords] == [round(plain.keywords[0].time_s, 1)]
    assert verified.keywords[0].verify_score > 0.5
    assert verified.text == "one"  # "two" followed the rejected blip: no gate, no word
    assert "two" in plain.text


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
