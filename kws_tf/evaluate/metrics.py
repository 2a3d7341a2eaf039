"""Evaluation measures: word accuracy and confusions, word error rate (jiwer), keyword hits and false
alarms with a tolerance window, DET points over a threshold sweep, recall at N false alarms per hour,
and frame-level F1 (numpy, jiwer and kws_tf.decisions only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from kws_tf.config import DetectorConfig
from kws_tf.decisions import KeywordDetector, Verifier, verify_scores_at

# Detection thresholds swept for the DET curve: steps of 0.05 below 0.5, 0.01 from 0.5 to 0.99 (where the
# low false-alarm points of a gate with verification sit), finer steps near 1, where a confident model's
# scores crowd, and 1.0001, which never fires (the zero-false-alarm end).
DET_THRESHOLDS = tuple(sorted({*np.round(np.arange(0.05, 0.451, 0.05), 4).tolist(), *np.round(np.arange(0.5, 0.991, 0.01), 4).tolist(),
                               *[round(1.0 - 10.0 ** -float(k), 6) for k in np.arange(2.5, 5.01, 0.5)], 1.0, 1.0001}))
TOLERANCE_S = 1.0  # a detection up to this long after the keyword's spoken end still counts as a hit


def word_accuracy(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str],
                  core_words: Sequence[str] = ()) -> dict:
    """Clip classification results.

    Args:
        truth, predicted: ``(n,)`` word per clip.
        labels: the words to report on, in order (rows/columns of the confusion matrix).
        core_words: words whose pooled accuracy is reported as ``core_accuracy``.

    Returns:
        ``{"n", "accuracy", "macro_accuracy", "core_accuracy", "per_word": {word: {"n", "correct",
        "accuracy"}}, "confusion": {"labels", "matrix"}, "most_confused": [{"true", "predicted",
        "count"}]}``; accuracies are fractions (None without clips); ``macro_accuracy`` averages the
        words that have clips.
    """
    truth, predicted = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    labels = list(labels)
    pos = {w: i for i, w in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), int)
    for t, p in zip(truth, predicted):
        if t in pos and p in pos:
            matrix[pos[t], pos[p]] += 1
    correct = truth == predicted
    per_word = {}
    for w in labels:
        sel = truth == w
        if sel.any():
            per_word[w] = {"n": int(sel.sum()), "correct": int(correct[sel].sum()), "accuracy": float(correct[sel].mean())}
    core = np.isin(truth, list(core_words))
    pairs = [(int(matrix[i, j]), labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels)) if i != j and matrix[i, j]]
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    return {
        "n": int(len(truth)),
        "accuracy": float(correct.mean()) if len(truth) else None,
        "macro_accuracy": float(np.mean([v["accuracy"] for v in per_word.values()])) if per_word else None,
        "core_accuracy": float(correct[core].mean()) if core.any() else None,
        "per_word": per_word,
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
        "most_confused": [{"true": t, "predicted": p, "count": c} for c, t, p in pairs[:10]],
    }


def word_error_rate(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> dict:
    """Corpus word error rate (S + D + I) / reference words, with jiwer's alignment.

    Args:
        references, hypotheses: one word list per utterance (an empty hypothesis is allowed).

    Returns:
        ``{"wer", "reference_words", "hits", "substitutions", "deletions", "insertions"}``; ``wer`` is
        None when there are no reference words.
    """
    import jiwer

    refs = [" ".join(r) for r in references]
    hyps = [" ".join(h) for h in hypotheses]
    n_ref = sum(len(r) for r in references)
    if not refs or n_ref == 0:
        return {"wer": None, "reference_words": 0, "hits": 0, "substitutions": 0, "deletions": 0,
                "insertions": sum(len(h) for h in hypotheses)}
    out = jiwer.process_words(refs, hyps)
    return {"wer": float(out.wer), "reference_words": n_ref, "hits": int(out.hits), "substitutions": int(out.substitutions),
            "deletions": int(out.deletions), "insertions": int(out.insertions)}


def match_detections(detections_s: Sequence[float], keyword_spans: np.ndarray,
                     tolerance_s: float = TOLERANCE_S) -> tuple[np.ndarray, int]:
    """Match detections to keywords.

    A detection at ``t`` hits keyword ``k`` when ``start_k <= t <= end_k + tolerance_s`` and ``k`` has
    no earlier hit; every other detection (including a second one on the same keyword) is a false alarm.

    Args:
        detections_s: detection times (s).
        keyword_spans: ``(k, 2)`` float, start and end (s) of each spoken keyword.

    Returns:
        ``((k,) bool hit per keyword, number of false alarms)``.
    """
    spans = np.asarray(keyword_spans, float).reshape(-1, 2)
    hit = np.zeros(len(spans), bool)
    detections = np.sort(np.asarray(detections_s, float))
    order = np.argsort(spans[:, 0], kind="stable")
    starts, reach = spans[order, 0], spans[order, 1] + tolerance_s
    if len(spans) and (starts[1:] > np.maximum.accumulate(reach)[:-1]).all():
        # Windows that do not overlap (as in a stream of separate keywords): at most one can hold a
        # detection, the last one starting at or before it, so the rule above is a lookup per detection.
        last = np.searchsorted(starts, detections, "right") - 1
        inside = (last >= 0) & (detections <= reach[np.maximum(last, 0)])
        hit[order[last[inside]]] = True
        return hit, int(len(detections) - hit.sum())
    hit, alarms = _match_in_order(detections, spans, tolerance_s)
    return hit, len(alarms)


def _match_in_order(detections_s: np.ndarray, spans: np.ndarray, tolerance_s: float) -> tuple[np.ndarray, list[float]]:
    """``match_detections``' rule written out: each detection in time order takes the first keyword whose
    window holds it and that has no hit yet, else it is a false alarm. ``(hit per keyword, false-alarm times)``."""
    hit, alarms = np.zeros(len(spans), bool), []
    for t in np.sort(np.asarray(detections_s, float)).tolist():
        inside = np.flatnonzero((spans[:, 0] <= t) & (t <= spans[:, 1] + tolerance_s) & ~hit)
        if len(inside):
            hit[inside[0]] = True
        else:
            alarms.append(t)
    return hit, alarms


def false_alarm_times(detections_s: Sequence[float], keyword_spans: np.ndarray, tolerance_s: float = TOLERANCE_S) -> list[float]:
    """The detections ``match_detections`` counts as false alarms, in time order: those that hit no
    keyword (or one already hit by an earlier detection)."""
    return _match_in_order(detections_s, np.asarray(keyword_spans, float).reshape(-1, 2), tolerance_s)[1]


Trace = tuple[np.ndarray, np.ndarray]  # (n,) times (s) and (n,) scores, as the runtime produced them


def detections(times_s: np.ndarray, probs: np.ndarray, detector: DetectorConfig, threshold: float,
               verify: Trace | None = None) -> list[float]:
    """Detection times of the runtime's keyword gate (``KeywordDetector``, with the word model's
    verification when ``detector.verify_threshold`` > 0) at ``threshold`` over a whole score trace:
    ``(n,)`` frame times and ``(n,)`` probabilities, as the runtime fed them. ``verify`` is the word
    model's keyword-probability trace (``Transcriber.on_verify_scores``); without it detections are
    not verified."""
    cfg = dataclasses.replace(detector, threshold=float(threshold))
    return [e.time_s for e in KeywordDetector(cfg).update(times_s, probs, verifier_lookup(times_s, detector, verify))]


def verifier_lookup(times_s: np.ndarray, detector: DetectorConfig, verify: Trace | None) -> Verifier | None:
    """The word model's score for a candidate at any of ``times_s``, looked up from the trace (None
    without a trace or with verification off). It depends on ``detector.verify_window_s`` only, so a
    grid builds it once per window and passes it to ``det_points`` (``lookup``)."""
    if verify is None or detector.verify_threshold <= 0:
        return None
    times = np.asarray(times_s, float)
    return dict(zip(times.tolist(), verify_scores_at(times, verify[0], verify[1], detector).tolist())).__getitem__


def det_points(times_s: np.ndarray, probs: np.ndarray, keyword_spans: np.ndarray, duration_s: float,
               detector: DetectorConfig, thresholds: Sequence[float] = DET_THRESHOLDS,
               tolerance_s: float = TOLERANCE_S, verify: Trace | None = None,
               lookup: Verifier | None = None) -> list[dict]:
    """Miss rate against false alarms per hour over a threshold sweep (the DET curve), the
    verification setting (``verify``, see ``detections``) held fixed. ``lookup``: the
    ``verifier_lookup`` of these times, ``verify`` and ``detector``'s verification window, when the
    caller already has it (it is then used instead of building one).

    Returns:
        One ``{"threshold", "recall", "miss_rate", "false_alarms", "fa_per_hour"}`` per threshold, in
        increasing threshold order.
    """
    check = lookup if lookup is not None else verifier_lookup(times_s, detector, verify)
    times = np.asarray(times_s, float)
    smoothed = KeywordDetector(detector)._smooth(np.asarray(probs, float))  # the same at every threshold: once
    points = []
    for th in sorted(thresholds):
        gate = KeywordDetector(dataclasses.replace(detector, threshold=float(th)))
        found = [e.time_s for e in gate.update_smoothed(times, smoothed, check)]
        points.append(det_point(found, keyword_spans, duration_s, th, tolerance_s))
    return points


def det_point(detections_s: Sequence[float], keyword_spans: np.ndarray, duration_s: float, threshold: float,
              tolerance_s: float = TOLERANCE_S) -> dict:
    """One DET point: ``{"threshold", "recall", "miss_rate", "false_alarms", "fa_per_hour"}`` of the
    detections made at ``threshold``."""
    hit, fa = match_detections(detections_s, keyword_spans, tolerance_s)
    recall = float(hit.mean()) if len(hit) else None
    return {"threshold": float(threshold), "recall": recall, "miss_rate": None if recall is None else 1.0 - recall,
            "false_alarms": int(fa), "fa_per_hour": fa / (max(duration_s, 1e-9) / 3600.0)}


def recall_at_fa(points: Sequence[dict], fa_per_hour: float) -> dict:
    """The best recall among DET points with at most ``fa_per_hour`` false alarms per hour (ties: the
    higher threshold). Returns ``{"recall", "threshold", "fa_per_hour"}`` (values None if no point)."""
    ok = [p for p in points if p["fa_per_hour"] <= fa_per_hour + 1e-12 and p["recall"] is not None]
    if not ok:
        return {"recall": None, "threshold": None, "fa_per_hour": None}
    best = max(ok, key=lambda p: (p["recall"], p["threshold"]))
    return {"recall": best["recall"], "threshold": best["threshold"], "fa_per_hour": best["fa_per_hour"]}


def frame_labels(frame_times_s: np.ndarray, keyword_ends_s: Sequence[float], label_s: float) -> np.ndarray:
    """``(frames,)`` float32 training-style labels: 1 where ``end < t <= end + label_s`` for a keyword end."""
    t = np.asarray(frame_times_s, float)[:, None]
    ends = np.asarray(keyword_ends_s, float)[None, :]
    return np.any((t > ends) & (t <= ends + label_s), axis=1).astype(np.float32)


def frame_f1(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Pooled frame precision, recall and F1 of ``probs >= threshold`` against 0/1 ``labels`` (any shape)."""
    y = np.asarray(labels).reshape(-1) > 0.5
    p = np.asarray(probs).reshape(-1) >= threshold
    tp, fp, fn = int(np.sum(y & p)), int(np.sum(~y & p)), int(np.sum(y & ~p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "threshold": float(threshold), "frames": int(y.size)}
