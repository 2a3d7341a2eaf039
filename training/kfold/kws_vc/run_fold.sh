#!/bin/bash
# One fold of the k-fold check of the VTLP + confusable-words keyword recipe (VC: the default keyword recipe with
# kws_data.freq_warp=0.1 and kws_data.confusable_prob=0.6; training/EXPERIMENTS.md, rule 12 of the forty-fourth
# session): train the fold's VC keyword model and a keyword-share verifier side by side, save the package's traces
# on the fold's validation streams 21 and 22, and write the grid training/kfold/kws_vc/foldK_VC.json. Its baseline
# is training/kfold/keyword_share/foldK_KS.json (the default keyword recipe with the same verifier recipe, same fold
# and streams). About 65 minutes on 2 cores; rerunning keeps the steps an earlier run finished (trainings, traces)
# and resumes a stopped training from its run folder. If one step fails (or the script is stopped), the steps still
# running beside it are stopped too.
#
#   bash training/kfold/kws_vc/run_fold.sh K [WORK]
#
# Run from the repository root with its virtual environment; DATA (default ../shared/speech_commands_subset) and
# SYNTH (default /tmp/synth) name the clips: the script first makes the synthetic clips of saved_models/MODEL_CARD.md
# there (python -m kws_tf.train.synth, which writes only the clips a folder lacks and checks the others); WORK
# (default /tmp/kfold_kws_vc) holds the models, logs and traces, which can go once the grid is written.
# PRESET, MINUTES and GRIDS (default: default, 240, training/kfold/kws_vc) are there for a quick try of the script
# itself (PRESET=tiny MINUTES=1 GRIDS=/tmp/grids), never for a fold of the check.
CHECK=kws_vc; source "$(dirname "$0")/../fold_start.sh" "$@"  # strict bash, K, W, PY, DATA, OUT, traps, wait_all, synthetic clips, T
P=()
done_before "$W/run_VC/kws/summary.json" "$W/VC/kws/model.json" || {
  $PY -m kws_tf.train $T --task kws --seed 0 --set kws_data.freq_warp=0.1 --set kws_data.confusable_prob=0.6 \
    --out "$W/VC" --run-dir "$W/run_VC" > "$W/VC.log" 2>&1 & P+=($!); }
done_before "$W/run_KS/words/summary.json" "$W/KS/words/model.json" || {
  $PY -m kws_tf.train $T --task words --seed 1 --set word_data.keyword_share=0.2 --out "$W/KS" --run-dir "$W/run_KS" > "$W/KS.log" 2>&1 & P+=($!); }
wait_all "${P[@]}"
echo "fold $K: trained ($(date -u +%H:%M) UTC)"
rm -rf "$W/PVC"; mkdir -p "$W/PVC"; cp -r "$W/VC/kws" "$W/PVC/kws"; cp -r "$W/KS/words" "$W/PVC/words"
P=()
for S in 21 22; do
  done_before "$W/PVC_${K}_s$S.npz" || {
    $PY tools/tune_detector.py --models "$W/PVC" --data-dir "$DATA" --split validation --fold "$K/5" --minutes "$MINUTES" --seed $S \
      --fa-per-hour 0.5 --save-traces "$W/PVC_${K}_s$S.npz" --save-only > "$W/trace_VC_$S.log" 2>&1 & P+=($!); }
done
wait_all "${P[@]}"
echo "fold $K: traces saved ($(date -u +%H:%M) UTC)"
$PY tools/tune_detector.py --models "$W/PVC" --traces "$W/PVC_${K}_s21.npz" "$W/PVC_${K}_s22.npz" --any-models \
  --fa-per-hour 0.5 --save-grid "$OUT/fold${K}_VC.json" > "$W/grid_VC.log" 2>&1
echo "fold $K: grid written to $OUT/fold${K}_VC.json ($(date -u +%H:%M) UTC)"
