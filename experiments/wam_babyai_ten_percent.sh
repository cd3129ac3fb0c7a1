#!/usr/bin/env bash
# The 10%-label comparison of RESULTS.md ("Three times the steps at 10% labels" and "A fourth
# seed, and the joint WAM's own policy"), one chain per training seed, on the smoke preset:
#
#   bc_0.1S                          BC, 1200 steps, without the grid convolution and ahead head
#   bc_0.1_conv_ahead S              + 400 BC steps with both options        (from bc_0.1S)
#   named_0.1_conv_ahead S           + 400 steps of the VPT route: BC on the labeller's names
#   ..._more800                      + 800 more steps of each                (1200 with options)
#   joint_0.1S_from_route            + 400 steps of the joint WAM (video + real/named actions)
#   bc_0.1_conv_ahead S_more1200     + 400 more BC steps: BC at the joint WAM's steps
#
# (S: "" for seed 0, "_seedN" otherwise.) The two runs of a stage train side by side. The data,
# tokenizer, 10% labeller and its names are built once and kept. The four last runs are
# evaluated in closed loop (T 1.0, no imagined frames) and `wam summarize` compares each with
# BC at the same training steps (OUT/ten_percent.json).
#
#   experiments/wam_babyai_ten_percent.sh [OUT]
#
# Settable in the environment: SEEDS (default "0 1 2 3"), EVAL_EPISODES (default 200),
# CPU_DEVICES (default 2: `--cpu-devices` of every command).
set -euo pipefail

OUT=${1:-runs/babyai_ten_percent}
SEEDS=${SEEDS:-"0 1 2 3"}
EVAL_EPISODES=${EVAL_EPISODES:-200}
CPU_DEVICES=${CPU_DEVICES:-2}
read -r -a SEED_LIST <<< "${SEEDS}"
cd "$(dirname "$0")/.."

started=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - started ))s)"; }
suffix() { if [[ "$1" == 0 ]]; then echo ""; else echo "_seed$1"; fi; }
# Waits for the background jobs named; fails if any of them failed.
side_by_side() {
  local status=0 pid
  for pid in "$@"; do wait "${pid}" || status=1; done
  return "${status}"
}

stage "data -> ${OUT}/data"
uv run wam data babyai --out "${OUT}/data" --level BabyAI-GoToLocal-v0 --episodes 10000 --clip-len 8
CONFIG=experiments/configs/babyai.py:smoke
stage "tokenizer -> ${OUT}/tokenizer"
uv run genie train tokenizer --cpu-devices "${CPU_DEVICES}" --config "${CONFIG}" \
  --config.data_dir "${OUT}/data" --workdir "${OUT}/tokenizer"
COMMON=(--cpu-devices "${CPU_DEVICES}" --config.data_dir "${OUT}/data"
  --config.tokenizer_workdir "${OUT}/tokenizer" --config.wam.label_fraction=0.1)
NAMES="${OUT}/named_0.1.npz"
stage "labeller -> ${OUT}/labeller_0.1, ${NAMES}"
uv run wam train --config "${CONFIG}_labeller" "${COMMON[@]}" --workdir "${OUT}/labeller_0.1"
if [[ ! -f "${NAMES}" ]]; then
  uv run wam label --workdir "${OUT}/labeller_0.1" --out "${NAMES}" --cpu-devices "${CPU_DEVICES}"
fi

RUNS=()
for seed in "${SEED_LIST[@]}"; do
  s=$(suffix "${seed}")
  BC=(--config "${CONFIG}" "${COMMON[@]}" --config.seed="${seed}" --config.wam.behaviour_cloning=True)
  ROUTE=("${BC[@]}" --config.wam.named_actions "${NAMES}")
  stage "seed ${seed}: BC 1200 steps without the options -> ${OUT}/bc_0.1${s}"
  uv run wam train "${BC[@]}" --config.wam.num_steps=1200 --config.wam.model.grid_conv=False \
    --config.wam.model.ahead_head=False --workdir "${OUT}/bc_0.1${s}"

  stage "seed ${seed}: + 400 with the options, BC and the VPT route"
  uv run wam train "${BC[@]}" --config.wam.num_steps=400 --config.wam.init_workdir "${OUT}/bc_0.1${s}" \
    --workdir "${OUT}/bc_0.1_conv_ahead${s}" &
  bc=$!
  uv run wam train "${ROUTE[@]}" --config.wam.num_steps=400 \
    --config.wam.init_workdir "${OUT}/bc_0.1${s}" --workdir "${OUT}/named_0.1_conv_ahead${s}" &
  side_by_side "${bc}" $!

  stage "seed ${seed}: + 800 more of each"
  uv run wam train "${BC[@]}" --config.wam.num_steps=800 --config.max_to_keep=4 \
    --config.wam.init_workdir "${OUT}/bc_0.1_conv_ahead${s}" \
    --workdir "${OUT}/bc_0.1_conv_ahead${s}_more800" &
  bc=$!
  uv run wam train "${ROUTE[@]}" --config.wam.num_steps=800 --config.max_to_keep=4 \
    --config.wam.init_workdir "${OUT}/named_0.1_conv_ahead${s}" \
    --workdir "${OUT}/named_0.1_conv_ahead${s}_more800" &
  side_by_side "${bc}" $!

  stage "seed ${seed}: + 400, the joint WAM from the route and BC"
  # The joint WAM: its own training (video loss, every mask mode), not behaviour cloning.
  uv run wam train --config "${CONFIG}" "${COMMON[@]}" --config.seed="${seed}" \
    --config.wam.named_actions "${NAMES}" --config.wam.num_steps=400 \
    --config.wam.init_workdir "${OUT}/named_0.1_conv_ahead${s}_more800" \
    --workdir "${OUT}/joint_0.1${s}_from_route" &
  joint=$!
  uv run wam train "${BC[@]}" --config.wam.num_steps=400 \
    --config.wam.init_workdir "${OUT}/bc_0.1_conv_ahead${s}_more800" \
    --workdir "${OUT}/bc_0.1_conv_ahead${s}_more1200" &
  side_by_side "${joint}" $!

  for run in bc_0.1_conv_ahead${s}_more800 named_0.1_conv_ahead${s}_more800 \
    joint_0.1${s}_from_route bc_0.1_conv_ahead${s}_more1200; do
    stage "seed ${seed}: closed-loop evaluation -> ${OUT}/${run}/eval"
    uv run wam eval --workdir "${OUT}/${run}" --episodes "${EVAL_EPISODES}" --no-imagine \
      --action-temperature 1.0 --cpu-devices "${CPU_DEVICES}"
    RUNS+=("${OUT}/${run}")
  done
done

uv run wam summarize --out "${OUT}/ten_percent.json" "${RUNS[@]}"
stage "done"
