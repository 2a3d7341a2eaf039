"""Judge a gate recipe by k-fold: for each fold, tune the keyword gate on the other folds' grids (their
counts added) and read that setting on the fold's own grid, as a user's gate tuned on some speakers meets
new ones. Prints each fold's setting and held-out result, and the held-out sums over all folds.

    python tools/kfold_gate.py FOLD1.json FOLD2.json ... [--fa-per-hour 0.5] [--current MODELS]

``--current MODELS`` also reads MODELS/kws/model.json's gate setting, as it is, on every fold and on all of
them together: the fixed setting a k-fold tuning has to beat (the folds' false-alarm rates track the test
speakers' far better than a few validation streams do; training/EXPERIMENTS.md, forty-fourth session).

Each file is one fold's grid, saved by ``tools/tune_detector.py --split validation --fold K/N --save-grid
FOLDK.json`` (with ``--traces A.npz B.npz --any-models`` to pool a fold's streams from saved traces). The
grids' stream records must show one fold each, all folds of one split and no fold twice (otherwise some
speakers would be tuned on and held out at once); folds without a grid are named in the sums' line. Grids
whose streams record the models' recipes (``tune_detector`` saves them) must all be of one recipe. The
setting is picked as ``tune_detector`` picks it on joined traces; only the gate's state across the joins
between streams is not carried (seconds in hours of stream).
"""

from __future__ import annotations

import math
import os
import sys

from kws_tf.cli import doc_summary, UsageParser
from kws_tf.config import DetectorConfig, to_dict
from kws_tf.evaluate.gate_grid import best_at, check_one_recipe, count_at, folds_of, load_grid, pool
from kws_tf.runtime import detector_config
from kws_tf.sidecar import ModelDirError, sidecar_path


def current_setting(models: str, cfg: DetectorConfig, paths: list[str], grids: list, folds: list[tuple[int, int]]) -> None:
    """Print the keywords caught and false alarms of ``models``' gate setting ``cfg`` on each fold's grid and
    on all of them; exits with a one-line error when the grids lack its point."""
    caught = false_alarms = keywords = 0
    seconds = 0.0
    for path, grid, (k, n) in zip(paths, grids, folds):
        try:
            c, fa = count_at(grid, cfg)
        except KeyError as e:
            raise SystemExit(f"error: {path}: {e.args[0]} ({models}/kws/model.json's setting); the grid was saved "
                             "with other verification or smoothing choices: read the setting on traces with tools/tune_detector.py")
        caught, false_alarms, keywords, seconds = caught + c, false_alarms + fa, keywords + grid.keywords, seconds + grid.seconds
        print(f"fold {k}/{n} ({path}): {models}'s setting as it is: caught {c} of {grid.keywords} keywords with {fa} "
              f"false alarms ({fa / (max(grid.seconds, 1e-9) / 3600):.2f} per hour)", flush=True)
    hours = max(seconds, 1e-9) / 3600
    print(f"{models}'s setting as it is, {len(grids)} folds: {to_dict(cfg)}; recall {caught / max(keywords, 1):.4f}, "
          f"caught {caught} of {keywords} keywords with {false_alarms} false alarms in {hours:.1f} h "
          f"({false_alarms / hours:.2f} per hour)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = UsageParser(description=doc_summary(__doc__))
    p.add_argument("grids", nargs="+", metavar="FOLD.json", help="one grid per fold (tools/tune_detector.py --save-grid)")
    p.add_argument("--fa-per-hour", type=float, default=0.5, help="false-alarm budget the gate is tuned to (default 0.5)")
    p.add_argument("--current", metavar="MODELS", help="also read the gate setting of MODELS/kws/model.json, as it is, "
                   "on each fold and on all of them (e.g. saved_models)")
    args = p.parse_args(argv)
    if len(args.grids) < 2:
        p.error("give two or more folds' grids: each fold is tuned on the others")
    if not (math.isfinite(args.fa_per_hour) and args.fa_per_hour >= 0):
        p.error(f"--fa-per-hour {args.fa_per_hour:g}: give the false-alarm budget per hour, a number of 0 or more")
    if args.current and not os.path.exists(sidecar_path(args.current, "kws")):  # load_sidecar's message names --models
        raise SystemExit(f"error: --current {args.current}: no {sidecar_path(args.current, 'kws')}; point --current at a "
                         "folder that 'python -m kws_tf.train' exported (e.g. saved_models/)")
    try:
        current = detector_config(args.current) if args.current else None  # a bad setting fails before the grids are read
    except ModelDirError as e:
        raise SystemExit(f"error: {e}")
    try:
        grids = [load_grid(path) for path in args.grids]
        folds = folds_of(grids, args.grids)  # one fold each, all of one split: no speaker both tuned on and held out
        unrecorded = check_one_recipe(grids, args.grids)  # and all of one recipe
    except ValueError as e:
        raise SystemExit(f"error: {e}")  # names the files it is about
    if unrecorded:
        print(f"note: {', '.join(unrecorded)}: saved without the models' recipes (grids saved before tune_detector "
              "recorded them, or models exported without a training record); not checked for one recipe", flush=True)
    try:
        pool(grids)  # the same settings and thresholds throughout, before any work
    except ValueError as e:
        raise SystemExit(f"error: {', '.join(args.grids)}: {e}")

    if args.current:
        current_setting(args.current, current, args.grids, grids, folds)

    caught = false_alarms = keywords = 0
    seconds = 0.0
    for i, (path, held, (k, n)) in enumerate(zip(args.grids, grids, folds)):
        others = pool([g for j, g in enumerate(grids) if j != i])
        best = best_at(others.rows(), args.fa_per_hour)
        label = f"fold {k}/{n} ({path}: {held.keywords} keywords in {held.seconds / 60:.0f} min)"
        keywords += held.keywords
        seconds += held.seconds
        if best is None:
            print(f"{label}: no setting meets {args.fa_per_hour:g} false alarms per hour on the other folds; counted as "
                  "catching nothing", flush=True)
            continue
        c, fa = count_at(held, best[1])
        caught, false_alarms = caught + c, false_alarms + fa
        print(f"{label}: tuned on the others (recall {best[0]:.3f}) {to_dict(best[1])}; held out: recall "
              f"{c / max(held.keywords, 1):.3f}, caught {c} of {held.keywords} keywords with {fa} false alarms "
              f"({fa / (max(held.seconds, 1e-9) / 3600):.2f} per hour)", flush=True)
    hours = max(seconds, 1e-9) / 3600
    n = folds[0][1]
    missing = sorted(set(range(1, n + 1)) - {k for k, _ in folds})
    which = f"{len(grids)} folds" if not missing else f"{len(grids)} of {n} folds (no grid for {', '.join(map(str, missing))})"
    print(f"held out, {which}: recall {caught / max(keywords, 1):.4f}, caught {caught} of {keywords} keywords with "
          f"{false_alarms} false alarms in {hours:.1f} h ({false_alarms / hours:.2f} per hour, budget {args.fa_per_hour:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
