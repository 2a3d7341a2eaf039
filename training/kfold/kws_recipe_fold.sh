#!/bin/bash
# One fold of a k-fold check of a keyword-model recipe, sourced by training/kfold/NAME/run_fold.sh K [WORK] after it
# sets CHECK=NAME, TAG (the recipe's short name in file names) and RECIPE (the recipe's --set options, an array):
# train the fold's keyword model with RECIPE (seed 0) and a keyword-share verifier (seed 1) side by side, save the
# package's traces on the fold's validation streams 21 and 22, and write the grid training/kfold/NAME/foldK_TAG.json.
# Its baseline is training/kfold/keyword_share/foldK_KS.json (the default keyword recipe with the same verifier
# recipe, same fold and streams). About 65 minutes on 2 cores; rerunning keeps the steps an earlier run finished
# (trainings, traces) and resumes a stopped training from its run folder. If one step fails (or the script is
# stopped), the steps still running beside it are stopped too.
#
# Run from the repository root with its virtual environment; DATA (default ../shared/speech_commands_subset) and
# SYNTH (default /tmp/synth) name the clips: the script first makes the synthetic clips of saved_models/MODEL_CARD.md
# there (python -m kws_tf.train.synth, which writes only the clips a folder lacks and checks the others); WORK
# (default /tmp/kfold_NAME) holds the models, logs and traces, which can go once the grid is written.
# PRESET, MINUTES and GRIDS (default: default, 240, training/kfold/NAME) are there for a quick try of the script
# itself (PRESET=tiny MINUTES=1 GRIDS=/tmp/grids), never for a fold of the check.
source "$(dirname "${BASH_SOURCE[0]}")/fold_start.sh" "$@"  # strict bash, K, W, PY, DATA, OUT, traps, wait_all, synthetic clips, T
P=()
done_before "$W/run_$TAG/kws/summary.json" "$W/$TAG/kws/model.json" || {
  $PY -m kws_tf.train $T --task kws --seed 0 "${RECIPE[@]}" --out "$W/$TAG" --run-dir "$W/run_$TAG" > "$W/$TAG.log" 2>&1 & P+=($!); }
done_before "$W/run_KS/words/summary.json" "$W/KS/words/model.json" || {
  $PY -m kws_tf.train $T --task words --seed 1 --set word_data.keyword_share=0.2 --out "$W/KS" --run-dir "$W/run_KS" > "$W/KS.log" 2>&1 & P+=($!); }
wait_all "${P[@]}"
echo "fold $K: trained ($(date -u +%H:%M) UTC)"
rm -rf "$W/P$TAG"; mkdir -p "$W/P$TAG"; cp -r "$W/$TAG/kws" "$W/P$TAG/kws"; cp -r "$W/KS/words" "$W/P$TAG/words"
P=()
for S in 21 22; do
  done_before "$W/P${TAG}_${K}_s$S.npz" || {
    $PY tools/tune_detector.py --models "$W/P$TAG" --data-dir "$DATA" --split validation --fold "$K/5" --minutes "$MINUTES" --seed $S \
      --fa-per-hour 0.5 --save-traces "$W/P${TAG}_${K}_s$S.npz" --save-only > "$W/trace_${TAG}_$S.log" 2>&1 & P+=($!); }
done
wait_all "${P[@]}"
echo "fold $K: traces saved ($(date -u +%H:%M) UTC)"
$PY tools/tune_detector.py --models "$W/P$TAG" --traces "$W/P${TAG}_${K}_s21.npz" "$W/P${TAG}_${K}_s22.npz" --any-models \
  --fa-per-hour 0.5 --save-grid "$OUT/fold${K}_$TAG.json" > "$W/grid_$TAG.log" 2>&1
echo "fold $K: grid written to $OUT/fold${K}_$TAG.json ($(date -u +%H:%M) UTC)"
