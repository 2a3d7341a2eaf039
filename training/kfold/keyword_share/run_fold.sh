#!/bin/bash
# One fold of the k-fold check of the keyword-share verifier recipe (training/EXPERIMENTS.md, rule 2 of the
# thirty-third session, restarted in the thirty-fifth): train the fold's keyword model and both verifiers side by
# side, save the two packages' traces on the fold's validation streams 21 and 22, and write the two grids
# training/kfold/keyword_share/foldK_D.json and foldK_KS.json. About 1 hour 40 minutes on 2 cores (fold 1: trainings 76, traces 21, grids 2); rerunning resumes the
# trainings from their run folders. If one step fails (or the script is stopped), the steps still running beside it
# are stopped too, so nothing keeps writing into WORK behind a failed fold.
#
#   bash training/kfold/keyword_share/run_fold.sh K [WORK]
#
# Run from the repository root with its virtual environment; DATA (default ../shared/speech_commands_subset) and
# SYNTH (default /tmp/synth) name the clips: the script first makes the synthetic clips of saved_models/MODEL_CARD.md
# there (python -m kws_tf.train.synth, which writes only the clips a folder lacks and checks the others); WORK
# (default /tmp/kfold_keyword_share) holds the models, logs and traces, which can go once the grids are written.
# PRESET, MINUTES and GRIDS (default: default, 240, training/kfold/keyword_share) are there for a quick try of
# the script itself (PRESET=tiny MINUTES=1 GRIDS=/tmp/grids), never for a fold of the check.
CHECK=keyword_share; source "$(dirname "$0")/../fold_start.sh" "$@"  # strict bash, K, W, PY, DATA, OUT, traps, wait_all, synthetic clips, T
$PY -m kws_tf.train $T --task kws --seed 0 --out "$W/KWS" --run-dir "$W/run_kws" > "$W/kws.log" 2>&1 & P=($!)
$PY -m kws_tf.train $T --task words --seed 1 --out "$W/D" --run-dir "$W/run_D" > "$W/D.log" 2>&1 & P+=($!)
$PY -m kws_tf.train $T --task words --seed 1 --set word_data.keyword_share=0.2 --out "$W/KS" --run-dir "$W/run_KS" > "$W/KS.log" 2>&1 & P+=($!)
wait_all "${P[@]}"
echo "fold $K: trained ($(date -u +%H:%M) UTC)"
P=()
for R in D KS; do
  rm -rf "$W/P$R"; mkdir -p "$W/P$R"; cp -r "$W/KWS/kws" "$W/P$R/kws"; cp -r "$W/$R/words" "$W/P$R/words"
  for S in 21 22; do
    $PY tools/tune_detector.py --models "$W/P$R" --data-dir "$DATA" --split validation --fold "$K/5" --minutes "$MINUTES" --seed $S \
      --fa-per-hour 0.5 --save-traces "$W/P${R}_${K}_s$S.npz" --save-only > "$W/trace_${R}_$S.log" 2>&1 & P+=($!)
  done
done
wait_all "${P[@]}"
echo "fold $K: traces saved ($(date -u +%H:%M) UTC)"
P=()
for R in D KS; do
  $PY tools/tune_detector.py --models "$W/P$R" --traces "$W/P${R}_${K}_s21.npz" "$W/P${R}_${K}_s22.npz" --any-models \
    --fa-per-hour 0.5 --save-grid "$OUT/fold${K}_$R.json" > "$W/grid_$R.log" 2>&1 & P+=($!)
done
wait_all "${P[@]}"
echo "fold $K: grids written to $OUT/fold${K}_D.json and fold${K}_KS.json ($(date -u +%H:%M) UTC)"
