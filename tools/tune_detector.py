r"""Pick the keyword gate's settings on the VALIDATION split: run the keyword model once over a long
seeded stream (as ``kws_tf.evaluate`` builds it), and the word model on every 1 s window of it,
replay both traces through the runtime's detector and word-model verification for a grid of
smoothing / patience / verification window and threshold / keyword threshold, print recall at a
false-alarm budget (and the sidecar's current setting's, for comparison), say why the best setting
missed the keywords it missed, and optionally write the best setting into the kws sidecar.

    python tools/tune_detector.py --models saved_models --data-dir ../shared/speech_commands_subset \
        [--split validation] [--minutes 60] [--seed 1] [--fa-per-hour 1] [--write] \
        [--save-traces FILE.npz [--save-only]] [--check-half]

Running the models over a long stream is the slow part (for 240 minutes on 2 cores, 3-30 minutes
depending on the load); the grid is minutes. ``--save-traces`` keeps the traces (add ``--save-only`` to
stop there), ``--traces A.npz [B.npz ...]`` tunes on saved traces (several streams, e.g. two seeds, joined
end to end) without running the models, and ``--held-out C.npz ...`` replays the best setting, and the
sidecar's current one as it is, on other streams: does the false-alarm rate hold there? Traces of other
models than ``--models`` are refused unless ``--any-models`` is given (a k-fold check: one recipe's setting
tuned on the other folds' models, replayed on this fold's; nothing is written then). ``--save-grid FILE.json``
keeps the grid's counts (caught keywords and false alarms per setting and threshold; ``tools/kfold_gate.py``
tunes each fold of a k-fold check on the other folds' grids and reads the setting on its own).
``tools/pair_traces.py`` pairs one package's keyword scores with another's word-model scores on the same
stream, to tune a keyword model with another word model as verifier without running either again.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys

import numpy as np

from kws_tf.cli import doc_summary, fold_arg, output_problem, FOLD_HELP, LISTS_HELP, UsageParser
from kws_tf.config import DetectorConfig, to_dict
from kws_tf.dataset import SPLITS, DataError, split_label
from kws_tf.decisions import KeywordDetector, verify_scores_at
from kws_tf.evaluate import metrics
from kws_tf.evaluate.gate_grid import best_at, best_by_pair, from_rows, save_grid
from kws_tf.evaluate.streams import keyword_stream, split_bank
from kws_tf.evaluate.suite import check_rate
from kws_tf.evaluate.traces import (NEVER_FIRES, TraceError, check_same_models, load_traces, model_digests, model_recipes,
                                   save_traces, stream_traces)
from kws_tf.runtime import Transcriber, detector_config
from kws_tf.sidecar import ModelDirError, load_sidecar, save_sidecar
from kws_tf.tflite_model import ModelLoadError

THRESHOLDS = np.round(np.concatenate([np.arange(0.1, 0.95, 0.05), np.arange(0.95, 0.999, 0.005)]), 4)
VERIFY_THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # 0: no verification
VERIFY_WINDOWS_S = (0.3, 0.5, 0.8)


def collect_traces(models: str, bank, keyword: str, minutes: float, seed: int, precision: str):
    """Run the package once over the seeded keyword stream with the gate closed: the keyword model's
    ``(times, probs)``, the keyword spans, the stream's duration and the word model's keyword trace
    ``(verify_times, verify_probs)`` (empty when the word model has no keyword class)."""
    tr = Transcriber.from_dir(models, precision, detector_overrides={"threshold": NEVER_FIRES})
    check_rate(models, tr.features.sample_rate_hz)
    traces, _ = stream_traces(tr, keyword_stream(bank, keyword, minutes, seed))
    if not len(traces[0]):
        raise SystemExit(f"error: --minutes {minutes:g}: a stream this short gives the keyword model no window to score; give more minutes")
    return traces


def replay(t: np.ndarray, pr: np.ndarray, spans: np.ndarray, duration: float, verify: metrics.Trace | None,
           cfg: DetectorConfig) -> dict:
    """The gate at ``cfg`` over whole traces: ``det_point`` (recall, false alarms and their rate)."""
    return metrics.det_point(metrics.detections(t, pr, cfg, cfg.threshold, verify), spans, duration, cfg.threshold)


def explain_misses(t: np.ndarray, pr: np.ndarray, spans: np.ndarray, cfg: DetectorConfig, verify: metrics.Trace | None) -> dict:
    """Why the gate at ``cfg`` missed the keywords it missed. For each missed keyword, over the frames
    from its start to its end plus the matching tolerance: ``"keyword model"`` when the smoothed keyword
    score never reached the threshold there, ``"verification"`` when it did but the word model confirmed
    none of those frames, else ``"gate busy"`` (refractory period or still disarmed after an earlier
    detection). Also ``"verifiable"``: the missed keywords the word model would confirm at some frame of
    the span (what a perfect keyword model could have recovered with this verification; None without
    verification)."""
    hit, _ = metrics.match_detections(metrics.detections(t, pr, cfg, cfg.threshold, verify), spans)
    high = KeywordDetector(cfg)._smooth(np.asarray(pr, float)) >= cfg.threshold  # the detector's own moving average
    check = verify is not None and cfg.verify_threshold > 0
    confirmed = verify_scores_at(t, verify[0], verify[1], cfg) >= cfg.verify_threshold if check else np.ones(len(t), bool)
    out = {"missed": int((~hit).sum()), "keyword model": 0, "verification": 0, "gate busy": 0, "verifiable": 0 if check else None}
    for start, end in spans[~hit]:
        inside = (t >= start) & (t <= end + metrics.TOLERANCE_S)
        above = inside & high
        if check:
            out["verifiable"] += bool((inside & confirmed).any())
        out["keyword model" if not above.any() else "verification" if not (above & confirmed).any() else "gate busy"] += 1
    return out


def grid(t: np.ndarray, pr: np.ndarray, spans: np.ndarray, duration: float, verify: metrics.Trace | None,
         base: DetectorConfig, verify_choices: list[tuple[float, float]]) -> list[tuple[DetectorConfig, list[dict]]]:
    """Every setting of the grid (smoothing, patience, verification window and threshold) with its DET
    points over the keyword thresholds: the slow part, computed once for any number of budgets."""
    rows = []
    lookups = {}  # per verification window: the word model's score at each frame (the slow part to build)
    for smoothing, patience in itertools.product((1, 3, 5), (1, 2, 4)):
        cfg = dataclasses.replace(base, smoothing_frames=smoothing, patience_frames=patience)
        for window_s, verify_th in verify_choices:
            vcfg = dataclasses.replace(cfg, verify_window_s=window_s, verify_threshold=verify_th)
            # The runtime's gate replayed on the traces: verification decides when it fires, not
            # just which detections stay, so each setting is its own replay.
            if verify_th > 0 and window_s not in lookups:  # with verification off the gate asks no lookup
                lookups[window_s] = metrics.verifier_lookup(t, vcfg, verify)
            rows.append((vcfg, metrics.det_points(t, pr, spans, duration, vcfg, THRESHOLDS, verify=verify,
                                                  lookup=lookups.get(window_s))))
    return rows


def search(t: np.ndarray, pr: np.ndarray, spans: np.ndarray, duration: float, verify: metrics.Trace | None,
           base: DetectorConfig, fa_per_hour: float, verify_choices: list[tuple[float, float]]) -> tuple[float, DetectorConfig] | None:
    """The grid: the best ``(recall, setting)`` at <= ``fa_per_hour`` over smoothing, patience,
    verification window and threshold and the keyword threshold (None if no setting meets the budget)."""
    return best_at(grid(t, pr, spans, duration, verify, base, verify_choices), fa_per_hour)


def half_check(t: np.ndarray, pr: np.ndarray, spans: np.ndarray, duration: float, verify: metrics.Trace | None,
               base: DetectorConfig, fa_per_hour: float, verify_choices: list[tuple[float, float]]) -> dict | None:
    """Does a tuned setting keep its false-alarm rate? Tune on the first half of the stream, then
    replay that setting on the second half: ``{"tuned": (recall, setting) on the first half, "held_out":
    det_point on the second}`` (None if no setting meets the budget on the first half). A keyword at the
    cut belongs to neither half; its frames still count, so it can add a false alarm to either."""
    mid = duration / 2.0
    first, second = t < mid, t >= mid
    spans_first, spans_second = spans[spans[:, 1] < mid - metrics.TOLERANCE_S], spans[spans[:, 0] >= mid]
    verify_first = verify if verify is None else (verify[0][verify[0] < mid], verify[1][verify[0] < mid])
    tuned = search(t[first], pr[first], spans_first, mid, verify_first, base, fa_per_hour, verify_choices)
    if tuned is None:
        return None
    cfg = tuned[1]
    held = replay(t[second], pr[second], spans_second, duration - mid, verify, cfg)
    return {"tuned": tuned, "held_out": held, "keywords": (len(spans_first), len(spans_second))}


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("--models", default="saved_models")
    p.add_argument("--data-dir", help="the data set to build the stream from (not needed with --traces)")
    p.add_argument("--split", choices=SPLITS, default="validation")
    p.add_argument("--lists-dir", help=LISTS_HELP)
    p.add_argument("--fold", type=fold_arg, metavar="K/N", help=FOLD_HELP)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fa-per-hour", type=float, default=1.0, help="false-alarm budget to maximize recall under")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32")
    p.add_argument("--write", action="store_true", help="store the best setting in MODELS/kws/model.json")
    p.add_argument("--save-traces", metavar="FILE.npz", help="also save the score traces (keyword model, word model, keyword spans)")
    p.add_argument("--save-only", action="store_true",
                   help="with --save-traces: stop once the traces are saved (no grid; tune later with --traces)")
    p.add_argument("--traces", nargs="+", metavar="FILE.npz",
                   help="tune on traces saved by --save-traces (several files: their streams joined) instead of running the models")
    p.add_argument("--save-grid", metavar="FILE.json",
                   help="also save the grid's counts (keywords caught and false alarms at every setting and threshold): "
                        "small, kept per fold of a k-fold check and pooled by tools/kfold_gate.py")
    p.add_argument("--held-out", nargs="+", metavar="FILE.npz",
                   help="replay the best setting and the sidecar's current one on these saved traces (another stream) "
                        "and report recall and false alarms")
    p.add_argument("--check-half", action="store_true",
                   help="also tune on the first half of the stream and report that setting on the second half "
                        "(does its false-alarm rate hold on audio it was not tuned on?)")
    p.add_argument("--any-models", action="store_true",
                   help="tune on (and replay on) traces saved from other models than --models, e.g. one recipe's models "
                        "of the other folds of a k-fold check; --models then gives only the keyword and the sidecar's "
                        "setting to compare with (not with --write)")
    args = p.parse_args(argv)
    if not args.traces and not args.data_dir:
        p.error("give --data-dir (to run the models over a stream) or --traces (saved by --save-traces)")
    if args.traces and (args.save_traces or args.data_dir):
        p.error("--traces tunes on saved traces: --data-dir and --save-traces are for a run of the models")
    if args.any_models and args.write:
        p.error("--any-models tunes on traces of other models: a setting from them is not written into --models (drop --write)")
    if args.save_only and (not args.save_traces or args.write or args.held_out or args.check_half or args.save_grid):
        p.error("--save-only saves the traces and stops: give --save-traces FILE.npz, without --write, --held-out, --check-half or --save-grid")
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        p.error(f"--minutes {args.minutes:g}: give the stream's length in minutes, a number above 0")
    if not (math.isfinite(args.fa_per_hour) and args.fa_per_hour >= 0):
        p.error(f"--fa-per-hour {args.fa_per_hour:g}: give the false-alarm budget per hour, a number of 0 or more")
    inputs = [os.path.abspath(path) for path in (*(args.traces or []), *(args.held_out or []))]
    for option, path in (("--save-traces", args.save_traces), ("--save-grid", args.save_grid)):
        problem = output_problem(path) if path else None  # checked before the long run, not after it
        if path and not problem and os.path.abspath(path) in inputs:
            problem = "is one of the input traces; write it to a new file"
        if problem:
            p.error(f"{option} {path}: {problem}")
    if args.save_traces and args.save_grid and os.path.abspath(args.save_traces) == os.path.abspath(args.save_grid):
        p.error(f"--save-grid {args.save_grid}: is also --save-traces; give the grid a file of its own")

    try:
        sidecar = load_sidecar(args.models, "kws")
        base = detector_config(args.models, sidecar)
        digests = model_digests(args.models, args.precision)
        recipes = model_recipes(args.models)
    except ModelDirError as e:
        raise SystemExit(f"error: {e}")
    keyword = sidecar["keyword"]
    held_out = None
    try:
        if args.held_out:  # bad files fail before the long run
            held_out, held_streams = load_traces(args.held_out)
            if not args.any_models:
                check_same_models(held_streams, digests, args.models)
        if args.traces:
            traces, streams = load_traces(args.traces)
            if not args.any_models:
                check_same_models(streams, digests, args.models)
    except TraceError as e:
        raise SystemExit(f"error: {e}")
    if args.traces:
        described = ", ".join(f"{s['file']} ({s['split']} seed {s['seed']})" if "split" in s else f"{s['file']} (no stream record)"
                              for s in streams)
        print(f"tuning on saved traces: {described}")
    else:
        try:
            bank = split_bank(args.data_dir, args.split, args.fold, args.lists_dir)
            traces = collect_traces(args.models, bank, keyword, args.minutes, args.seed, args.precision)
        except (DataError, ModelDirError, ModelLoadError) as e:
            raise SystemExit(f"error: {e}")
        split = split_label(args.split, args.fold, args.lists_dir)  # another fold or list, another stream: they never pair
        streams = [{"split": split, "minutes": args.minutes, "seed": args.seed, "models": os.path.abspath(args.models),
                    "precision": args.precision, **digests, **recipes}]  # saved with the traces and the grid
        if args.save_traces:
            save_traces(args.save_traces, traces, streams[0])
            print(f"saved the score traces to {args.save_traces}")
            if args.save_only:
                return 0
    t, pr, spans_arr, duration, vt, vp = traces
    verify_choices = list(itertools.product(VERIFY_WINDOWS_S, VERIFY_THRESHOLDS)) if len(vt) else [(0.5, 0.0)]
    if not len(vt):
        print(f"the word model has no class {keyword!r}: tuning without verification", file=sys.stderr)

    splits = sorted({s.get("split", "unknown") for s in streams})
    print(f"{'+'.join(splits)} split: {len(spans_arr)} keywords in {duration / 60:.0f} min; recall at <= {args.fa_per_hour:g} FA/h")
    verify = (vt, vp) if len(vt) else None
    rows = grid(t, pr, spans_arr, duration, verify, base, verify_choices)
    if args.save_grid:
        save_grid(args.save_grid, from_rows(rows, len(spans_arr), duration, streams))
        print(f"saved the grid's counts to {args.save_grid} (pool them with other streams' in tools/kfold_gate.py)")
    by_pair = best_by_pair(rows, args.fa_per_hour)
    for (smoothing, patience), recall in by_pair.items():
        print(f"  smoothing {smoothing}  patience {patience}: best recall {recall:.3f} "
              f"(over {len(rows) // max(len(by_pair), 1)} verification settings)", flush=True)
    best = best_at(rows, args.fa_per_hour)
    current = metrics.recall_at_fa(metrics.det_points(t, pr, spans_arr, duration, base, THRESHOLDS, verify=verify), args.fa_per_hour)
    print(f"the sidecar's current setting (its threshold swept): recall {current['recall'] or 0:.3f}")
    if best is None:
        print("no setting meets the false-alarm budget", file=sys.stderr)
        return 1
    print(f"best: {to_dict(best[1])} (recall {best[0]:.3f})")
    why = explain_misses(t, pr, spans_arr, best[1], verify)
    print(f"its {why['missed']} missed keywords: keyword score under the threshold {why['keyword model']}, "
          f"not confirmed by the word model {why['verification']}, gate busy {why['gate busy']}"
          + ("" if why["verifiable"] is None else f"; the word model would confirm {why['verifiable']} of them "
             "somewhere in the keyword's span"))
    if held_out is not None:
        ht, hpr, hspans, hduration, hvt, hvp = held_out
        held_verify = (hvt, hvp) if len(hvt) else None
        for label, cfg in ((f"held out ({' + '.join(args.held_out)}, {len(hspans)} keywords in {hduration / 60:.0f} min)", best[1]),
                           ("held out, the sidecar's current setting as it is", base)):
            held = replay(ht, hpr, hspans, hduration, held_verify, cfg)
            caught = round((held["recall"] or 0) * len(hspans))  # exact: the share of a whole number of keywords
            print(f"{label}: recall {held['recall'] or 0:.3f} with {held['false_alarms']} false alarms "
                  f"({held['fa_per_hour']:.2f} per hour, budget {args.fa_per_hour:g}); caught {caught} of {len(hspans)} keywords")
    if args.check_half:
        check = half_check(t, pr, spans_arr, duration, verify, base, args.fa_per_hour, verify_choices)
        if check is None:
            print("half check: no setting meets the budget on the first half")
        else:
            held = check["held_out"]
            print(f"half check: tuned on the first half ({check['keywords'][0]} keywords) recall {check['tuned'][0]:.3f}; "
                  f"on the second half ({check['keywords'][1]} keywords) recall {held['recall'] or 0:.3f} with "
                  f"{held['false_alarms']} false alarms ({held['fa_per_hour']:.2f} per hour, budget {args.fa_per_hour:g})")
    if args.write:
        sidecar.setdefault("thresholds", {})["detector"] = to_dict(best[1])
        tuning = {"split": "+".join(splits), "minutes": round(duration / 60, 1)}
        seeds = [s.get("seed") for s in streams]
        tuning.update({"seed": seeds[0]} if len(seeds) == 1 else {"seeds": seeds})
        sidecar["thresholds"]["detector_tuning"] = {**tuning, "fa_per_hour_budget": args.fa_per_hour, "recall": best[0]}
        body = {k: v for k, v in sidecar.items() if k not in ("format", "task")}
        save_sidecar(args.models, "kws", body)
        print(f"wrote the detector settings into {args.models}/kws/model.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
