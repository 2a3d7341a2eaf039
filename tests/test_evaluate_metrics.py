"""Evaluation measures against hand-computed cases (no models, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from kws_tf.config import DetectorConfig
from kws_tf.evaluate import metrics


def test_word_accuracy_macro_core_confusion():
    truth = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    r = metrics.word_accuracy(truth, pred, ["a", "b", "c"], core_words=["a", "b"])
    assert r["n"] == 5
    assert r["accuracy"] == pytest.approx(3 / 5)
    assert r["per_word"]["a"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert r["per_word"]["c"]["accuracy"] == 0.0
    assert r["macro_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert r["core_accuracy"] == pytest.approx(3 / 4)
    assert r["confusion"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]]}
    assert r["most_confused"] == [{"true": "a", "predicted": "b", "count": 1}, {"true": "c", "predicted": "a", "count": 1}]


def test_word_error_rate_counts_each_error_kind():
    refs = [["one", "two", "three"], ["go"], ["yes"]]
    hyps = [["one", "two"], ["go", "up"], ["no"]]
    r = metrics.word_error_rate(refs, hyps)
    assert (r["deletions"], r["insertions"], r["substitutions"], r["hits"]) == (1, 1, 1, 3)
    assert r["reference_words"] == 5
    assert r["wer"] == pytest.approx(3 / 5)


def test_word_error_rate_without_reference_words():
    assert metrics.word_error_rate([], [])["wer"] is None
    assert metrics.word_error_rate([[]], [["up"]]) == {"wer": None, "reference_words": 0, "hits": 0, "substitutions": 0,
                                                       "deletions": 0, "insertions": 1}


def test_match_detections_tolerance_window_and_duplicates():
    spans = np.array([[1.0, 1.5], [10.0, 10.4]])
    # 1.7: hit on keyword 0; 2.2: inside keyword 0's window but it already has a hit -> false alarm;
    # 5.0: nothing there; 11.5: after 10.4 + 1.0 -> false alarm, keyword 1 missed.
    hit, fa = metrics.match_detections([5.0, 1.7, 2.2, 11.5], spans, tolerance_s=1.0)
    assert hit.tolist() == [True, False] and fa == 3
    hit, fa = metrics.match_detections([0.99, 11.4], spans, tolerance_s=1.0)  # window edges
    assert hit.tolist() == [False, True] and fa == 1
    hit, fa = metrics.match_detections([], np.zeros((0, 2)))
    assert hit.size == 0 and fa == 0


def _match_one_by_one(detections, spans, tolerance_s):
    """The matching rule written out: each detection in time order takes the first keyword (in the given
    order) whose window holds it and that has no hit yet; else it is a false alarm."""
    hit, fa = np.zeros(len(spans), bool), 0
    for t in sorted(detections):
        inside = [k for k, (a, b) in enumerate(spans) if a <= t <= b + tolerance_s and not hit[k]]
        if inside:
            hit[inside[0]] = True
        else:
            fa += 1
    return hit.tolist(), fa


@pytest.mark.parametrize("gap", [3.0, 0.2])  # windows apart (a keyword stream), windows overlapping
def test_match_detections_follows_the_rule_on_long_random_streams(gap):
    rng = np.random.default_rng(7)
    for _ in range(20):
        starts = np.cumsum(rng.uniform(gap, gap + 2.0, 60))
        spans = np.stack([starts, starts + rng.uniform(0.2, 0.8, 60)], axis=1)[rng.permutation(60)]  # any order
        edges = spans[:5, 0].tolist() + (spans[5:10, 1] + 1.0).tolist()  # exactly on a window's first and last instant
        detections = rng.uniform(0, starts.max() + 3, 80).tolist() + edges
        hit, fa = metrics.match_detections(detections, spans, tolerance_s=1.0)
        assert (hit.tolist(), fa) == _match_one_by_one(detections, spans, 1.0)
        alarms = metrics.false_alarm_times(detections, spans, tolerance_s=1.0)
        assert len(alarms) == fa and alarms == sorted(alarms) and set(alarms) <= set(detections)
        kept = [t for t in detections if t not in alarms]  # without the false alarms: the same hits, none false
        assert metrics.match_detections(kept, spans, tolerance_s=1.0)[0].tolist() == hit.tolist()


def test_false_alarm_times_names_the_detections_that_hit_nothing():
    spans = np.array([[1.0, 1.5], [10.0, 10.4]])  # as in the test above: 2.2 is a second detection on keyword 0
    assert metrics.false_alarm_times([5.0, 1.7, 2.2, 11.5], spans, tolerance_s=1.0) == [2.2, 5.0, 11.5]
    assert metrics.false_alarm_times([1.2, 10.1], spans) == [] and metrics.false_alarm_times([3.0], np.zeros((0, 2))) == [3.0]


def test_det_points_equal_the_gate_replayed_at_each_threshold():
    """det_points smooths the trace once for all thresholds: the same detections as the runtime's gate
    fed the whole trace at each threshold, with and without verification."""
    rng = np.random.default_rng(3)
    t = np.round(np.arange(1, 3001) * 0.04, 6)
    p = np.clip(np.convolve(rng.uniform(0, 1, t.size), np.ones(4) / 4, "same"), 0, 1).astype(np.float32)
    spans = np.array([[a, a + 0.5] for a in np.arange(2.0, 118.0, 6.0)])
    verify = (np.round(np.arange(25, 3001, 10) * 0.04, 6), rng.uniform(0, 1, 298).astype(np.float32))
    thresholds = [0.4, 0.5, 0.55, 0.6, 0.7]
    for cfg in (DetectorConfig(smoothing_frames=3, patience_frames=2, refractory_s=1.0),
                DetectorConfig(smoothing_frames=1, patience_frames=1, verify_threshold=0.5, verify_window_s=0.5)):
        expected = [metrics.det_point(metrics.detections(t, p, cfg, th, verify), spans, 120.0, th) for th in thresholds]
        assert metrics.det_points(t, p, spans, 120.0, cfg, thresholds, verify=verify) == expected
        assert len({pt["false_alarms"] for pt in expected}) > 1  # the thresholds differ on this trace


def _trace():
    """4 s of frames every 0.04 s: 0.9 just after keyword 0 (0.5-1.0 s), 0.6 on nothing at 2 s,
    0.3 just after keyword 1 (3.0-3.3 s)."""
    t = np.round(np.arange(1, 101) * 0.04, 6)
    p = np.full(t.shape, 0.01, np.float32)
    p[(t > 1.0) & (t <= 1.2)] = 0.9
    p[(t > 2.0) & (t <= 2.1)] = 0.6
    p[(t > 3.3) & (t <= 3.5)] = 0.3
    return t, p, np.array([[0.5, 1.0], [3.0, 3.3]])


def test_det_points_and_recall_at_fa():
    t, p, spans = _trace()
    cfg = DetectorConfig(smoothing_frames=1, patience_frames=1, refractory_s=0.0)
    pts = metrics.det_points(t, p, spans, duration_s=3600.0, detector=cfg, thresholds=[0.8, 0.2, 0.5, 1.0001], tolerance_s=0.5)
    assert [q["threshold"] for q in pts] == [0.2, 0.5, 0.8, 1.0001]
    assert [(q["recall"], q["false_alarms"]) for q in pts] == [(1.0, 1), (0.5, 1), (0.5, 0), (0.0, 0)]
    assert [q["fa_per_hour"] for q in pts] == [1.0, 1.0, 0.0, 0.0]
    assert pts[1]["miss_rate"] == 0.5
    assert metrics.recall_at_fa(pts, 0.5) == {"recall": 0.5, "threshold": 0.8, "fa_per_hour": 0.0}
    assert metrics.recall_at_fa(pts, 1.0) == {"recall": 1.0, "threshold": 0.2, "fa_per_hour": 1.0}
    assert metrics.recall_at_fa([], 1.0)["recall"] is None


def test_det_sweep_uses_the_runtime_detector():
    """Smoothing and refractory period come from the detector settings, as in the runtime."""
    t, p, spans = _trace()
    smooth = DetectorConfig(smoothing_frames=5, patience_frames=1, refractory_s=0.0)
    # Averaged over 5 frames the 0.6 bump (2 frames) stays below 0.5: no false alarm; the keyword
    # fires once the average of its 0.9 frames crosses 0.5 (third frame, 1.12 s).
    pt = metrics.det_points(t, p, spans, 3600.0, smooth, [0.5], tolerance_s=0.5)[0]
    assert (pt["recall"], pt["false_alarms"]) == (0.5, 0)
    assert metrics.detections(t, p, smooth, 0.5) == pytest.approx([1.12])
    once = DetectorConfig(smoothing_frames=1, patience_frames=1, refractory_s=10.0)
    assert metrics.detections(t, p, once, 0.2) == pytest.approx([1.04])  # refractory hides the rest


def test_frame_labels_and_f1():
    times = np.array([0.9, 1.0, 1.1, 1.5, 1.6, 2.0])
    labels = metrics.frame_labels(times, [1.0], label_s=0.5)
    assert labels.tolist() == [0, 0, 1, 1, 0, 0]  # (end, end + label_s]
    probs = np.array([0.0, 0.7, 0.8, 0.2, 0.0, 0.0])
    r = metrics.frame_f1(labels, probs, threshold=0.5)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == 0.5 and r["frames"] == 6
    assert metrics.frame_f1(np.zeros(3), np.zeros(3))["f1"] == 0.0


def test_det_thresholds_span_the_range():
    th = metrics.DET_THRESHOLDS
    assert list(th) == sorted(th) and th[0] <= 0.05 and th[-1] > 1.0 and 0.5 in th


def test_recall_at_fa_finds_a_point_between_coarse_thresholds():
    """A keyword scored 0.93 and a false alarm scored 0.92: only a threshold above 0.92 and up to 0.93 keeps
    the keyword without the false alarm; a grid stepping 0.90 -> 0.95 misses it (recall 0 at no false alarm)."""
    t = np.arange(0.0, 20.0, 0.04)
    p = np.zeros_like(t)
    p[(t > 2.0) & (t <= 2.2)] = 0.93   # the keyword, spoken 1.5-2.0 s
    p[(t > 10.0) & (t <= 10.2)] = 0.92  # something else
    cfg = DetectorConfig(smoothing_frames=1, patience_frames=1, refractory_s=0.0)

    def best(thresholds):
        return metrics.recall_at_fa(metrics.det_points(t, p, np.array([[1.5, 2.0]]), 3600.0, cfg, thresholds), 0.5)

    assert best(metrics.DET_THRESHOLDS) == {"recall": 1.0, "threshold": 0.93, "fa_per_hour": 0.0}
    assert best([x for x in metrics.DET_THRESHOLDS if not 0.9 < x < 0.95])["recall"] == 0.0
