"""The measurements of one model precision through the TFLite runtime (``Transcriber``,
``TFLiteModel``): words on clips (clean and noisy), the keyword on long streams and on 10 s clips,
gated sentences, and speed (numpy, tqdm and kws_tf runtime modules only)."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from kws_tf.config import FeatureConfig, from_dict
from kws_tf.dataset import CORE_WORDS
from kws_tf.decisions import is_word_label
from kws_tf.evaluate import metrics
from kws_tf.evaluate.streams import SR, WordBank, add_noise, keyword_stream, sentences, training_like_clips
from kws_tf.evaluate.traces import NEVER_FIRES, stream_traces
from kws_tf.features import log_mel
from kws_tf.runtime import Transcriber, detector_config
from kws_tf.sidecar import VERIFIER, ModelDirError, load_sidecar, load_verifiers, model_file
from kws_tf.tflite_model import TFLiteModel

log = logging.getLogger(__name__)

SNRS_DB = (20.0, 10.0, 5.0, 0.0)
FA_PER_HOUR = (0.5, 1.0)


@dataclass(frozen=True)
class Settings:
    """What to synthesize and how much (the same for every precision, so they see the same audio)."""

    seed: int = 0
    minutes: float = 30.0
    f1_clips: int = 100
    sentences_with_keyword: int = 40
    sentences_without_keyword: int = 20
    tolerance_s: float = metrics.TOLERANCE_S
    progress: bool = True


def _bar(total: float, desc: str, settings: Settings, position: int, unit: str = "it"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, position=position, leave=False,
                disable=not settings.progress, dynamic_ncols=True, mininterval=1.0)


def check_rate(models_dir: str, rate: int) -> None:
    """Refuse (ModelDirError, one line) a package whose models take audio at ``rate`` Hz other than ``SR``:
    the evaluation and tuning tools build their clips, streams and sentences at ``SR``."""
    if rate != SR:
        raise ModelDirError(f"{models_dir}: its models take {rate} Hz audio, and the evaluation builds its clips and "
                            f"streams at {SR} Hz; use models trained at {SR} Hz")


def vocabulary(models_dir: str) -> tuple[str, list[str]]:
    """The keyword and the word model's word labels (classes such as ``_silence_`` left out)."""
    kws, words = load_sidecar(models_dir, "kws"), load_sidecar(models_dir, "words")
    return kws.get("keyword") or kws["labels"][0], [w for w in words["labels"] if is_word_label(w)]


def evaluate_words(models_dir: str, precision: str, bank: WordBank, settings: Settings, position: int = 0) -> dict:
    """Clip accuracy (clean and with noise at ``SNRS_DB``) of ``classify_clip``, as ``--single-word``."""
    _, labels = vocabulary(models_dir)
    tr = Transcriber.from_dir(models_dir, precision, mode="single_word")
    idx = bank.indices(exclude=None, vocabulary=set(labels))
    truth = [str(w) for w in bank.words[idx]]
    bar = _bar(len(idx) * (1 + len(SNRS_DB)), f"{precision} words", settings, position, "clip")
    predicted, scores = [], []
    start = time.perf_counter()
    for i in idx:
        ev = tr.classify_clip(bank.audio[i])
        predicted.append(ev.word)
        scores.append(ev.score)
        bar.update(1)
    clip_ms = 1000.0 * (time.perf_counter() - start) / max(len(idx), 1)
    result = metrics.word_accuracy(truth, predicted, labels, [w for w in CORE_WORDS if w in labels])
    result["by_snr_db"] = {"clean": {"accuracy": result["accuracy"], "macro_accuracy": result["macro_accuracy"]}}
    for snr in SNRS_DB:
        noisy = add_noise(bank, idx, snr, settings.seed)
        pred = []
        for audio in noisy:
            pred.append(tr.classify_clip(audio).word)
            bar.update(1)
        acc = metrics.word_accuracy(truth, pred, labels)
        result["by_snr_db"][f"{snr:g}"] = {"accuracy": acc["accuracy"], "macro_accuracy": acc["macro_accuracy"]}
    bar.close()
    result["clip_ms"] = clip_ms
    result["predictions"] = [{"index": int(i), "word": t, "predicted": p, "score": round(float(s), 4)}
                             for i, t, p, s in zip(idx, truth, predicted, scores)]
    return result


def _trace(tr: Transcriber) -> tuple[list[np.ndarray], list[np.ndarray]]:
    times: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    tr.on_kws_scores = lambda t, p: (times.append(np.asarray(t, float)), probs.append(np.asarray(p, np.float32)))
    return times, probs


def evaluate_keyword(models_dir: str, precision: str, bank: WordBank, settings: Settings, position: int = 0) -> dict:
    """Keyword recall and false alarms on the long streams (a DET sweep over the runtime's score trace
    replayed through ``KeywordDetector`` and, when the sidecar sets it, the word model's verification
    over its keyword-probability trace), and frame F1 on training-like 10 s clips."""
    keyword, _ = vocabulary(models_dir)
    detector = detector_config(models_dir)
    tr = Transcriber.from_dir(models_dir, precision, mode="gated", detector_overrides={"threshold": NEVER_FIRES})
    bar = _bar(round(settings.minutes * 60), f"{precision} keyword stream", settings, position, "s")
    (t, p, spans_arr, duration, vt, vp), busy = stream_traces(
        tr, keyword_stream(bank, keyword, settings.minutes, settings.seed), verify=detector.verify_threshold > 0,
        finish=True, progress=lambda seconds: bar.update(round(seconds)))
    bar.close()
    verify = (vt, vp) if len(vt) else None
    lookup = metrics.verifier_lookup(t, detector, verify)  # the same for the sweep and the sidecar's threshold
    points = metrics.det_points(t, p, spans_arr, duration, detector, tolerance_s=settings.tolerance_s, verify=verify, lookup=lookup)
    at_default = metrics.det_points(t, p, spans_arr, duration, detector, [detector.threshold], settings.tolerance_s,
                                    verify, lookup)[0]
    return {
        "stream_s": duration,
        "keywords": int(len(spans_arr)),
        "threshold": detector.threshold,
        "verify_threshold": detector.verify_threshold if verify is not None else None,
        "at_threshold": at_default,
        "recall_at_fa_per_hour": {f"{fa:g}": metrics.recall_at_fa(points, fa) for fa in FA_PER_HOUR},
        "det": points,
        "frame": frame_f1(models_dir, precision, bank, settings),
        "stream_rtf": busy / max(duration, 1e-9),
    }


def frame_f1(models_dir: str, precision: str, bank: WordBank, settings: Settings) -> dict:
    """Frame F1 of the keyword model run once on each training-like 10 s clip, labelled as in
    training: 1 for ``output.label_s`` after each keyword's spoken end."""
    sidecar = load_sidecar(models_dir, "kws")
    keyword, _ = vocabulary(models_dir)
    features = from_dict(FeatureConfig, sidecar["features"])
    out = sidecar["output"]
    model = TFLiteModel(model_file(models_dir, "kws", sidecar, precision))
    n_in = int(sidecar["input"]["frames"])
    labels, scores = [], []
    for clip in training_like_clips(bank, keyword, settings.f1_clips, settings.seed, float(sidecar["input"].get("clip_s", 10.0))):
        probs = model.run(log_mel(clip.audio, features)[:n_in])
        j = np.arange(len(probs))
        last_frame = j * int(out["stride_frames"]) + int(out["kernel_frames"]) - 1
        frame_t = (last_frame * features.hop_samples + features.window_samples) / features.sample_rate_hz
        labels.append(metrics.frame_labels(frame_t, clip.keyword_spans[:, 1], float(out.get("label_s", 0.5))))
        scores.append(probs)
    result = metrics.frame_f1(np.concatenate(labels) if labels else np.zeros(0), np.concatenate(scores) if scores else np.zeros(0))
    result["clips"] = settings.f1_clips
    return result


def evaluate_sentences(models_dir: str, precision: str, bank: WordBank, settings: Settings, position: int = 0) -> tuple[dict, dict]:
    """Gated transcripts of 10 s sentences: WER, gate recall, false gates, real-time factor.

    Returns:
        ``(results, example)``: ``example`` is one sentence with the keyword, its audio, score trace,
        detections and words (for the report's trace plot).
    """
    keyword, labels = vocabulary(models_dir)
    tr = Transcriber.from_dir(models_dir, precision, mode="gated")
    times, probs = _trace(tr)
    items = sentences(bank, keyword, set(labels), settings.sentences_with_keyword, settings.sentences_without_keyword, settings.seed)
    refs, hyps, neg_words, hits, false_gates, neg_gated, busy, audio_s = [], [], 0, [], 0, 0, 0.0, 0.0
    examples, example = [], {}
    for s in _iter(items, f"{precision} sentences", settings, position):
        times.clear()
        probs.clear()
        t0 = time.perf_counter()
        result = tr.transcribe(s.mixture.audio)
        busy += time.perf_counter() - t0
        audio_s += result.duration_s
        hyp = [w.word for w in result.words]
        det = [k.time_s for k in result.keywords]
        hit, fa = metrics.match_detections(det, s.mixture.keyword_spans, settings.tolerance_s)
        false_gates += fa
        if s.has_keyword:
            refs.append(s.reference)
            hyps.append(hyp)
            hits.append(bool(hit.any()))
        else:
            neg_words += len(hyp)
            neg_gated += bool(det)
        if len(examples) < 12:
            examples.append({"keyword": s.has_keyword, "reference": " ".join(s.reference), "hypothesis": " ".join(hyp)})
        if s.has_keyword and not example:
            t, p = np.concatenate(times), np.concatenate(probs)
            keep = t <= result.duration_s
            example = {"precision": precision, "audio": s.mixture.audio, "times_s": t[keep], "probs": p[keep], "detections": result.keywords,
                       "words": result.words, "spans": s.mixture.words, "keyword": keyword, "reference": s.reference,
                       "threshold": tr.detector_cfg.threshold}
    res = metrics.word_error_rate(refs, hyps)
    n_neg = len(items) - len(refs)
    res.update({"with_keyword": len(refs), "without_keyword": n_neg,
                "gate_recall": float(np.mean(hits)) if hits else None, "false_gates": false_gates,
                "false_gate_rate": neg_gated / n_neg if n_neg else None, "words_without_keyword": neg_words,
                "rtf": busy / max(audio_s, 1e-9), "examples": examples})
    return res, example


def _iter(items: list, desc: str, settings: Settings, position: int):
    bar = _bar(len(items), desc, settings, position)
    for item in items:
        yield item
        bar.update(1)
    bar.close()


def model_sizes(models_dir: str, precision: str) -> dict:
    """Bytes of the package's TFLite files at ``precision``: ``kws``, ``words`` and, when it has its own
    verifiers, ``verifier`` (all of them together)."""
    sizes = {folder: os.path.getsize(model_file(models_dir, folder, load_sidecar(models_dir, folder), precision))
             for folder in ("kws", "words")}
    verifiers = load_verifiers(models_dir)
    if verifiers:
        sizes[VERIFIER] = sum(os.path.getsize(model_file(models_dir, folder, sc, precision)) for folder, sc in verifiers)
    return sizes


def evaluate_precision(models_dir: str, precision: str, bank: WordBank, settings: Settings, position: int = 0) -> tuple[dict, dict]:
    """Every measurement of one precision. Returns ``(json-ready results, report artifacts)``."""
    words = evaluate_words(models_dir, precision, bank, settings, position)
    keyword = evaluate_keyword(models_dir, precision, bank, settings, position)
    sent, example = evaluate_sentences(models_dir, precision, bank, settings, position)
    speed = {"clip_ms": words.pop("clip_ms"), "stream_rtf": keyword.pop("stream_rtf"), "sentence_rtf": sent.pop("rtf")}
    return {"model_bytes": model_sizes(models_dir, precision), "words": words, "keyword": keyword, "sentences": sent, "speed": speed}, {"example": example}
