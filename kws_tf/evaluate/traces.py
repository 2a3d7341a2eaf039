"""Saved score traces of a keyword stream (``tools/tune_detector.py --save-traces``): the keyword model's
score per frame, the word model's "stop" score per window, the keyword spans, and where they came from
(split, seed, minutes, digests of the model files). Tuning and pairing read them back (numpy only).
Bad files and mismatched traces raise ``TraceError`` with a one-line message; the tools print it."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable

import numpy as np

from kws_tf.atomic_write import atomic_path
from kws_tf.evaluate.streams import SR
from kws_tf.sidecar import TASKS, confirming_folders, load_sidecar, model_file

STREAM_KEYS = ("split", "seed", "minutes", "precision")  # the same keys, the same audio and scores
NEVER_FIRES = 1.0001  # detector threshold above any probability: scores are traced, no gate opens


class TraceError(Exception):
    """A traces file that cannot be used as asked; the message is one line naming the file."""


def model_digests(models: str, precision: str) -> dict:
    """Short hashes of the package's TFLite files at ``precision``: ``kws_digest`` and ``words_digest``
    (each alone) and ``models_digest`` (both together). A trace's keyword scores depend on the
    keyword model's bytes alone and its verifier scores on the verifying word model's (``verifier/`` when
    the package has one, else ``words/``; ``words_digest`` is that model's, or the files of all its
    verifiers in turn when it has several), so traces and models whose digests agree belong together.
    Raises ``ModelDirError`` for an unusable folder."""
    both, out = hashlib.sha256(), {}
    for task in TASKS:
        one = hashlib.sha256()
        for folder in confirming_folders(models) if task == "words" else [task]:
            with open(model_file(models, folder, load_sidecar(models, folder, task_in_file=task), precision), "rb") as f:
                data = f.read()
            both.update(data)
            one.update(data)
        out[f"{task}_digest"] = one.hexdigest()[:16]
    out["models_digest"] = both.hexdigest()[:16]
    return out


def model_recipes(models: str) -> dict:
    """How the package's keyword model and verifying word model were made, from their sidecars:
    ``kws_recipe`` and ``words_recipe``, each the run-time ``features`` and the training ``recipe`` (the
    preset's values with any ``--set``; no seed, fold or data). Saved with traces and grids so that a
    k-fold check can refuse folds of different recipes. A model whose sidecar has no training record
    (exported by hand) gives no entry; a package with several verifiers gives ``words_recipe``
    ``{"verifiers": [each one's]}`` when each has one. Raises ``ModelDirError`` for an unusable folder."""
    out = {}
    for task in TASKS:
        recipes = []
        for folder in confirming_folders(models) if task == "words" else [task]:
            sidecar = load_sidecar(models, folder, task_in_file=task)
            recipe = sidecar.get("training", {}).get("recipe")
            recipes.append({"features": sidecar.get("features", {}), **recipe} if isinstance(recipe, dict) else None)
        if None not in recipes:
            out[f"{task}_recipe"] = recipes[0] if len(recipes) == 1 else {"verifiers": recipes}
    return out


def check_same_models(streams: list[dict], digests: dict, models: str) -> None:
    """Refuse traces saved from other models than ``models`` (a setting tuned on them would be written
    into the wrong package): per-model digests where the traces have them (paired traces have only
    these), else the two files' joint digest. Traces saved without any digest are not checked. Raises
    ``TraceError`` naming the first file of other models."""
    for s in streams:
        if f"{TASKS[0]}_digest" in s:
            differ = [task for task in TASKS if s.get(f"{task}_digest") != digests[f"{task}_digest"]]
        else:
            differ = [] if s.get("models_digest") in (None, digests["models_digest"]) else list(TASKS)
        if differ:
            names = " and ".join({"kws": "keyword", "words": "word"}[task] for task in differ)
            raise TraceError(f"{s['file']}: traces of another {names} model ({s.get('models', 'unknown')}, "
                             f"{s.get('precision', 'float32')}) than {models}'s; "
                             f"save traces of {models} with --save-traces, or pass the --models and --precision they came from")


def stream_traces(tr, segments: Iterable, verify: bool = True, finish: bool = False,
                  progress: Callable[[float], None] | None = None) -> tuple[tuple, float]:
    """Feed a ``Transcriber`` whose gate never opens (threshold ``NEVER_FIRES``) the keyword stream
    ``segments`` (``streams.keyword_stream``) in 1 s blocks and trace its scores: ``((times, probs, spans,
    duration, verify_times, verify_probs), busy_s)``, the traces as ``save_traces`` takes them, keyword
    scores up to the stream's end. ``verify``: also run the word model on every window for its keyword
    score (slow; empty traces otherwise); ``finish``: end the stream with ``Transcriber.finish``, which
    scores its last frames (and verifier windows reaching into the padding). ``busy_s``: seconds spent
    feeding the audio, less the extra word-model runs of ``verify`` (the stream's own cost). ``progress``:
    called with each segment's seconds."""
    times, probs, verify_t, verify_p, spans, duration, busy = [], [], [], [], [], 0.0, 0.0
    tr.on_kws_scores = lambda t, p: (times.append(np.asarray(t, float)), probs.append(np.asarray(p, np.float32)))
    if verify:
        tr.on_verify_scores = lambda t, p: (verify_t.append(np.asarray(t, float)), verify_p.append(np.asarray(p, np.float32)))
    for start_s, seg in segments:
        t0 = time.perf_counter()
        for lo in range(0, len(seg.audio), SR):  # the runtime's numbers do not depend on the block size
            tr.feed(seg.audio[lo:lo + SR])
        busy += time.perf_counter() - t0
        spans.append(seg.keyword_spans + start_s)
        duration = start_s + len(seg.audio) / SR
        if progress is not None:
            progress(len(seg.audio) / SR)
    if finish:
        tr.finish()
    t, p = (np.concatenate(times), np.concatenate(probs)) if times else (np.zeros(0), np.zeros(0, np.float32))
    keep = t <= duration
    vt, vp = (np.concatenate(verify_t), np.concatenate(verify_p)) if verify_t else (np.zeros(0), np.zeros(0))
    spans_arr = np.concatenate(spans) if spans else np.zeros((0, 2))
    return (t[keep], p[keep], spans_arr, duration, vt, vp), busy - tr.trace_busy_s


def save_traces(path: str, traces: tuple, stream: dict) -> None:
    """Write ``(times, probs, spans, duration, verify_times, verify_probs)`` and where it came from
    (``stream``: split, minutes, seed, models, precision and the digests) to ``path``, as named."""
    t, pr, spans, duration, vt, vp = traces
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would add ".npz" to a bare name
        np.savez_compressed(f, times=t, probs=pr, spans=spans, duration=duration, verify_times=vt, verify_probs=vp,
                            stream=json.dumps(stream))


def read_traces(path: str) -> tuple[tuple, dict]:
    """One saved traces file: ``(times, probs, spans (K, 2), duration, verify_times, verify_probs)`` and its
    stream record (empty for files saved without one). Raises ``TraceError`` for other files."""
    try:
        with np.load(path) as z:
            traces = (z["times"], z["probs"], z["spans"].reshape(-1, 2), float(z["duration"]), z["verify_times"], z["verify_probs"])
            stream = json.loads(str(z["stream"])) if "stream" in z.files else {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # cut-off files too
        raise TraceError(f"{path}: not a traces file from --save-traces ({e}); save it again with --save-traces")
    return traces, stream


def load_traces(paths: list[str]) -> tuple[tuple, list[dict]]:
    """Saved traces of one or more streams joined end to end (each stream's times shifted by the
    durations before it), in ``read_traces``' form, and each file's stream record with its ``file`` name."""
    parts, streams, offset = [], [], 0.0
    for path in paths:
        (t, pr, spans, duration, vt, vp), stream = read_traces(path)
        parts.append((t + offset, pr, spans + offset, vt + offset, vp))
        streams.append({"file": os.path.basename(path), **stream})
        offset += duration
    t, pr, spans, vt, vp = (np.concatenate([p[k] for p in parts]) for k in range(5))
    return (t, pr, spans, offset, vt, vp), streams


def pair_traces(keyword_path: str, verifier_path: str) -> tuple[tuple, dict]:
    """The keyword scores of one saved trace with the word-model scores of another saved on the same
    stream (same split, seed and minutes, same keyword spans): what a package of the first's keyword
    model and the second's word model would have saved, without running either again. Returns the
    traces and their stream record (per-model digests from each file). Raises ``TraceError`` when the
    two are not the same stream or lack the per-model digests."""
    (t, pr, spans, duration, _, _), ks = read_traces(keyword_path)
    (_, _, vspans, vduration, vt, vp), vs = read_traces(verifier_path)
    for key in (*STREAM_KEYS, "kws_digest", "words_digest"):
        if key not in ks or key not in vs:
            path = keyword_path if key not in ks else verifier_path
            raise TraceError(f"{path}: saved without its {key.replace('_', ' ')}; save it again with --save-traces")
    same = all(ks[k] == vs[k] for k in STREAM_KEYS)
    if not same or spans.shape != vspans.shape or not np.allclose(spans, vspans) or abs(duration - vduration) > 1e-6:
        raise TraceError(f"{keyword_path} and {verifier_path}: not the same stream ({ks['split']} seed {ks['seed']}, "
                         f"{ks['minutes']} min, {ks['precision']} against {vs['split']} seed {vs['seed']}, {vs['minutes']} min, "
                         f"{vs['precision']}); pair traces saved with the same --split, --seed, --minutes and --precision")
    stream = {k: ks[k] for k in STREAM_KEYS}
    stream.update(models=f"keyword model of {ks.get('models', keyword_path)}, word model of {vs.get('models', verifier_path)}",
                  kws_digest=ks["kws_digest"], words_digest=vs["words_digest"],
                  **{k: r[k] for k, r in (("kws_recipe", ks), ("words_recipe", vs)) if k in r},
                  paired_from=[os.path.basename(keyword_path), os.path.basename(verifier_path)])
    return (t, pr, spans, duration, vt, vp), stream
