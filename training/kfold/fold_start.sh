# The start every k-fold script shares, sourced as `CHECK=NAME; source "$(dirname "$0")/../fold_start.sh" "$@"` by
# training/kfold/NAME/run_fold.sh K [WORK]: strict bash; K, the fold's work folder W (WORK, default /tmp/kfold_NAME,
# then fK), PY, DATA, SYNTH, PRESET, MINUTES and the grids' folder OUT (GRIDS, default training/kfold/NAME); the traps
# that stop every step still running when one fails or the script is stopped, naming the logs; wait_all; the model
# card's synthetic clips made in SYNTH (only those missing); T, the training options every fold's training shares; and
# done_before, which lets a rerun skip the steps an earlier run of the fold finished.
set -euo pipefail
K=$1; W=${2:-/tmp/kfold_$CHECK}/f$K; PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/speech_commands_subset}; SYNTH=${SYNTH:-/tmp/synth}
PRESET=${PRESET:-default}; MINUTES=${MINUTES:-240}; OUT=${GRIDS:-training/kfold/$CHECK}
mkdir -p "$W" "$OUT"
trap 'rc=$?; jobs -p | xargs -r kill 2>/dev/null || true
      [ $rc -eq 0 ] || echo "fold $K: stopped (exit $rc); the logs are in $W" >&2' EXIT  # on success no job is left
trap 'exit 130' INT; trap 'exit 143' TERM  # so that the EXIT trap sees a stop by signal as one
source "$(dirname "${BASH_SOURCE[0]}")/wait_all.sh"  # wait_all PID...: stops here, with its status, at the first step that fails
WORDS="bed bird cat dog down eight five four go happy house left marvin nine no off on one right seven sheila six stop three tree two up wow yes zero"
echo "fold $K: synthetic clips in $SYNTH ($(date -u +%H:%M) UTC)"  # the model card's; about 20 s, also where all are there
$PY -m kws_tf.train.synth --words $WORDS --out "$SYNTH" --per-word 200 --seed 0 > "$W/synth.log" 2>&1
T="--data-dir $DATA --synthetic-dir $SYNTH --preset $PRESET --fold $K/5 --no-test --quiet"
# done_before FILE...: every FILE is there from an earlier run of this fold (a finished training leaves its run folder's
# summary.json and its export's model.json; a trace is renamed into place whole), so a rerun skips that step and says
# so; a step that was stopped is run again (a training resumes from its last finished epoch)
done_before() {
  local f; for f in "$@"; do [ -s "$f" ] || return 1; done
  echo "fold $K: kept from an earlier run: $*"
}
