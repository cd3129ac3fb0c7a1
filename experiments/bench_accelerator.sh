#!/usr/bin/env bash
# The speed figures of the scale-out issue on one accelerator (GPU or TPU host), most important
# first, each run under its own time limit so that one slow compile cannot take the rest:
#
#   experiments/bench_accelerator.sh [OUT]        (default OUT: runs/bench_accelerator)
#
#   1. dynamics train step at case_study size in bf16 (MFU against a matmul measured in the
#      same run), batch 12, with the automatic attention kernel;
#   2. cached MaskGIT sampling at case_study size (frames/s), batch 1;
#   3. tokenizer train step, batch 12, with cuDNN flash attention (auto) and with XLA's;
#   4. the dynamics step at the case study's batch of 36 with remat "dots"; sampling at batch 8;
#   5. LAM train step; the WAM step (BabyAI smoke sizes, bf16).
#
# Every layer stack is scanned (one compiled block): unrolled, a case-study dynamics step did
# not compile within 120 s on an H200, scanned it took 19 s. Batch 12: at 36 the dynamics step
# with XLA's attention asked for 152 GiB (NOTES.md).
#
# Each run writes OUT/NAME.json (the benchmark's JSON line), OUT/NAME.log (its stderr, with
# the phases timed) and a line of OUT/summary.txt. Commands default to `uv run genie` /
# `uv run wam`; set GENIE and WAM to run them another way (e.g. GENIE="python3 -m genie_jax.cli"
# where the dependencies are installed already). RUN_LIMIT_S caps each run (default 150 s).
set -uo pipefail

OUT=${1:-runs/bench_accelerator}
read -r -a GENIE_CMD <<<"${GENIE:-uv run genie}"
read -r -a WAM_CMD <<<"${WAM:-uv run wam}"
RUN_LIMIT_S=${RUN_LIMIT_S:-150}
COINRUN=experiments/configs/coinrun.py
cd "$(dirname "$0")/.." || exit
mkdir -p "${OUT}"
started=$(date +%s)

# run NAME LIMIT_S COMMAND...: the command's last stdout line (its JSON) goes to OUT/NAME.json.
run() {
  local name=$1 limit=$2
  shift 2
  echo "== ${name} ($(($(date +%s) - started)) s in)"
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

SCAN=(--config.tokenizer.model.scan_layers=True --config.lam.model.scan_layers=True
  --config.dynamics.model.scan_layers=True)
CASE=(--config "${COINRUN}:case_study" "${SCAN[@]}")
run dynamics_case_study_b12 "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench train --model dynamics \
  "${CASE[@]}" --batch-size 12
run sample_case_study_b1 "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench sample "${CASE[@]}" --cached-only \
  --batch 1 --repeats 3
run tokenizer_case_study_b12 "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench train --model tokenizer \
  "${CASE[@]}" --batch-size 12
run tokenizer_case_study_b12_xla_attention "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench train \
  --model tokenizer "${CASE[@]}" --batch-size 12 --attention xla
run dynamics_case_study_b36_remat_dots "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench train --model dynamics \
  "${CASE[@]}" --config.dynamics.model.remat_policy=dots
run sample_case_study_b8 "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench sample "${CASE[@]}" --cached-only \
  --batch 8 --repeats 3
run lam_case_study_b12 "${RUN_LIMIT_S}" "${GENIE_CMD[@]}" bench train --model lam "${CASE[@]}" \
  --batch-size 12
run wam_smoke_bf16 "${RUN_LIMIT_S}" "${WAM_CMD[@]}" bench train --config experiments/configs/babyai.py:smoke \
  --config.wam.model.dtype=bfloat16
echo "== done ($(($(date +%s) - started)) s)"
