# wait_all PID...: wait for these background jobs and stop the script at the first that fails, with its exit
# status (an EXIT trap can then stop the others). By process id, checked once a second: bash's `wait -n` misses a
# job that ended before it was called (two steps of run_fold.sh ending together made a finished fold exit 127),
# while `wait PID` still returns the status of a job that has ended. Sourced by the k-fold scripts (bash).
wait_all() {
  local pid left
  while [ $# -gt 0 ]; do
    left=()
    for pid in "$@"; do
      if kill -0 "$pid" 2>/dev/null; then left+=("$pid"); else wait "$pid" || exit $?; fi
    done
    set -- "${left[@]}"
    [ $# -eq 0 ] || sleep 1
  done
}
