#!/usr/bin/env bash
# Shell helpers of the WAM training chains (experiments/wam_babyai_*.sh), sourced, never run.
# `evaluate` reads EVAL_EPISODES and CPU_DEVICES and appends to EVALUATIONS (the chain's
# `wam summarize` reads it).

started=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - started ))s)"; }
suffix() { if [[ "$1" == 0 ]]; then echo ""; else echo "_seed$1"; fi; }
# Waits for the background jobs named; fails if any of them failed.
side_by_side() {
  local status=0 pid
  for pid in "$@"; do wait "${pid}" || status=1; done
  return "${status}"
}
# train WORKDIR STEPS ARGS...: `wam train ARGS` for STEPS steps, unless the run has written
# its checkpoint at STEPS (an unfinished run resumes).
train() {
  local workdir=$1 steps=$2
  if [[ -d "${workdir}/checkpoints/${steps}" ]]; then
    echo "${workdir}: trained (checkpoint ${steps})"
    return
  fi
  uv run wam train "${@:3}" --config.wam.num_steps="${steps}" --workdir "${workdir}"
}
# pair WORKDIR STEPS ARGS... -- WORKDIR STEPS ARGS...: the two `train` calls side by side.
pair() {
  local split=1 first
  while [[ "${!split:-}" != "--" ]]; do
    (( split++ < $# )) || { echo "pair: no -- between the two runs" >&2; return 2; }
  done
  train "${@:1:split-1}" &
  first=$!
  train "${@:split+1}" &
  side_by_side "${first}" $!
}
# evaluation_dir RUN STEPS: the run's evaluation at STEPS on EVAL_EPISODES test seeds at
# T 1.0, if it has one.
evaluation_dir() {
  local dir
  for dir in "$1/eval/step_$2_seeds"*_t1; do
    if [[ -f "${dir}/metrics.json" && "${dir}" =~ _seeds([0-9]+)-([0-9]+)_t1$ ]] \
      && (( BASH_REMATCH[2] - BASH_REMATCH[1] == EVAL_EPISODES )); then
      echo "${dir}"
      return
    fi
  done
}
# evaluate RUN STEPS: evaluates the run unless done; adds the evaluation to the summary.
EVALUATIONS=()
evaluate() {
  local found
  found=$(evaluation_dir "$1" "$2")
  if [[ -z "${found}" ]]; then
    stage "closed-loop evaluation -> $1/eval"
    uv run wam eval --workdir "$1" --episodes "${EVAL_EPISODES}" --no-imagine \
      --action-temperature 1.0 --cpu-devices "${CPU_DEVICES}"
    found=$(evaluation_dir "$1" "$2")
  fi
  # The run itself names its newest evaluation, the one just made.
  EVALUATIONS+=("${found:-$1}")
}
