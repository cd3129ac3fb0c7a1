#!/usr/bin/env bash
# The speed figures of the scale-out issue on one accelerator (GPU or TPU host), most important
# first, each run under its own time limit so that one slow compile cannot take the rest:
#
#   experiments/bench_accelerator.sh [OUT]        (default OUT: runs/bench_accelerator)
#
#   1. dynamics train step at case_study size in bf16 (MFU against a matmul measured in the
#      same run), with the automatic attention kernel (cuDNN flash attention on a GPU);
#   2. cached MaskGIT sampling at case_study size (frames/s), batch 1;
#   3. the same dynamics step with XLA's own attention, for comparison;
#   4. cached sampling at batch 8; the dynamics step with remat "dots";
#   5. tokenizer and LAM train steps at case_study size;
#   6. the WAM step (BabyAI smoke sizes, bf16).
#
# Each run writes OUT/NAME.json (the benchmark's JSON line), OUT/NAME.log (its stderr) and a
# line of OUT/summary.txt. Commands default to `uv run genie` / `uv run wam`; set GENIE and WAM
# to run them another way (e.g. GENIE="python3 -m genie_jax.cli" where the dependencies are
# installed already). RUN_LIMIT_S caps each run (default 150 s).
set -uo pipefail

OUT=${1:-runs/bench_accelerator}
GENIE=${GENIE:-uv run genie}
WAM=${WAM:-uv run wam}
RUN_LIMIT_S=${RUN_LIMIT_S:-150}
COINRUN=experiments/configs/coinrun.py
cd "$(dirname "$0")/.."
mkdir -p "${OUT}"
started=$(date +%s)

# run NAME LIMIT_S COMMAND...: the command's last stdout line (its JSON) goes to OUT/NAME.json.
run() {
  local name=$1 limit=$2
  shift 2
  echo "== ${name} ($(($(date +%s) - started)) s in)"
  # shellcheck disable=SC2086
  timeout --signal=KILL "${limit}" "$@" >"${OUT}/${name}.out" 2>"${OUT}/${name}.log"
  local status=$?
  tail -n 1 "${OUT}/${name}.out" >"${OUT}/${name}.json"
  if [ "${status}" -ne 0 ]; then
    echo "${name}: exit ${status}" | tee -a "${OUT}/summary.txt"
    tail -n 5 "${OUT}/${name}.log"
    return "${status}"
  fi
  python3 - "${name}" "${OUT}/${name}.json" <<'EOF' | tee -a "${OUT}/summary.txt"
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
keys = ("step_time_s", "tokens_per_s", "mfu", "measured_peak_flops", "model_flops_per_step",
        "peak_memory_bytes", "cudnn_attention_calls", "compile_s", "cached_frames_per_s",
        "cached_s_per_rollout", "device")
print(name + ": " + ", ".join(f"{k}={r[k]:.4g}" if isinstance(r[k], float) else f"{k}={r[k]}"
                              for k in keys if k in r))
EOF
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  | tee "${OUT}/device.txt"

CASE=(--config "${COINRUN}:case_study")
run dynamics_case_study "${RUN_LIMIT_S}" ${GENIE} bench train --model dynamics "${CASE[@]}"
run sample_case_study_b1 "${RUN_LIMIT_S}" ${GENIE} bench sample "${CASE[@]}" --cached-only \
  --batch 1 --repeats 3
run dynamics_case_study_xla_attention "${RUN_LIMIT_S}" ${GENIE} bench train --model dynamics \
  "${CASE[@]}" --attention xla
run sample_case_study_b8 "${RUN_LIMIT_S}" ${GENIE} bench sample "${CASE[@]}" --cached-only \
  --batch 8 --repeats 3
run dynamics_case_study_remat_dots "${RUN_LIMIT_S}" ${GENIE} bench train --model dynamics \
  "${CASE[@]}" --config.dynamics.model.remat_policy=dots
run tokenizer_case_study "${RUN_LIMIT_S}" ${GENIE} bench train --model tokenizer "${CASE[@]}"
run lam_case_study "${RUN_LIMIT_S}" ${GENIE} bench train --model lam "${CASE[@]}"
run wam_smoke_bf16 "${RUN_LIMIT_S}" ${WAM} bench train --config experiments/configs/babyai.py:smoke \
  --config.wam.model.dtype=bfloat16
echo "== done ($(($(date +%s) - started)) s)"
