# Sourced by the benchmark scripts. `run_steps LOG_DIR STEP...` runs each STEP (a command line, split
# into words: a function of the calling script and its arguments) $JOBS at a time. With JOBS=1 (the
# default) the steps run one after another in this shell, their output on the terminal; with more,
# side by side, each one's output in LOG_DIR/<the step, spaces as dashes>.log. A failed step stops
# the script, named with its log, after the steps already running have been waited for.

run_steps() {
  local log_dir=$1 jobs=${JOBS:-1} step pid failed=""
  shift
  declare -A step_of=()
  _reap() {  # waits for one running step; remembers the first that failed
    if ! wait -n -p pid; then
      [ -n "$failed" ] || failed=${step_of[$pid]}
    fi
  }
  for step in "$@"; do
    if [ "$jobs" -le 1 ]; then
      $step
      continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do _reap; done
    [ -n "$failed" ] && break
    $step > "$log_dir/${step// /-}.log" 2>&1 &
    step_of[$!]=$step
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do _reap; done
  if [ -n "$failed" ]; then
    echo "${0##*/}: step '$failed' failed; its log: $log_dir/${failed// /-}.log" >&2
    exit 1
  fi
}
