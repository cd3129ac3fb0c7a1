#!/usr/bin/env bash
# The 10%-label comparison of RESULTS.md ("Three times the steps at 10% labels", "A fourth
# seed, and the joint WAM's own policy" and "The joint WAM trained longer"), one chain per
# training seed, on the smoke preset:
#
#   bc_0.1S                          BC, 1200 steps, without the grid convolution and ahead head
#   bc_0.1_conv_ahead S              + 400 BC steps with both options        (from bc_0.1S)
#   named_0.1_conv_ahead S           + 400 steps of the VPT route: BC on the labeller's names
#   ..._more800                      + 800 more steps of each                (2400 steps in all)
#   joint_0.1S_from_route            + 400 steps of the joint WAM (video + real/named actions)
#   bc_0.1_conv_ahead S_more1200     + 400 more BC steps: BC at the joint WAM's steps (2800)
#   joint_0.1S_from_route_more800    + 800 more steps of the joint WAM
#   bc_0.1_conv_ahead S_more2000     + 800 more BC steps (3600)
#
# (S: "" for seed 0, "_seedN" otherwise.) The two runs of a stage train side by side. The data,
# tokenizer, 10% labeller and its names are built once and kept. The joint WAM and BC at 2800
# and 3600 steps are evaluated in closed loop (EVAL_EPISODES test seeds, T 1.0, no imagined
# frames; with EVAL_ROUTE=1 also the route and BC at 2400) and `wam summarize` compares each
# run with BC at the same training steps (OUT/ten_percent.json).
#
#   experiments/wam_babyai_ten_percent.sh [OUT]
#
# Resumable: finished data, names, runs (their last checkpoint written) and evaluations (their
# metrics.json on the same test seeds) are kept; an unfinished run resumes from its newest
# checkpoint. Settable in the environment: SEEDS (default "0 1 2 3"), LEVEL (default
# BabyAI-GoToLocal-v0: the level the data is played on and the policies are evaluated on),
# LABELLER_MORE (default 0: steps the labeller trains on after the preset's 600, in a run of
# its own, labeller_0.1_moreN, whose names then go to named_0.1_moreN.npz; PickupLoc's
# labeller needs them, see RESULTS.md), EVAL_EPISODES (default 1000: on 200 test seeds one
# success rate's standard error is 1.5-2.5 points, and seed 3's joint WAM led BC by 10.5
# points there but by 7.9 on 1000), EVAL_ROUTE (default 0) and CPU_DEVICES (default 2:
# `--cpu-devices` of every command).
set -euo pipefail

OUT=${1:-runs/babyai_ten_percent}
SEEDS=${SEEDS:-"0 1 2 3"}
LEVEL=${LEVEL:-BabyAI-GoToLocal-v0}
LABELLER_MORE=${LABELLER_MORE:-0}
EVAL_EPISODES=${EVAL_EPISODES:-1000}
EVAL_ROUTE=${EVAL_ROUTE:-0}
CPU_DEVICES=${CPU_DEVICES:-2}
read -r -a SEED_LIST <<< "${SEEDS}"
cd "$(dirname "$0")/.."

# shellcheck source=SCRIPTDIR/wam_chain.sh
source experiments/wam_chain.sh

stage "data -> ${OUT}/data"
uv run wam data babyai --out "${OUT}/data" --level "${LEVEL}" --episodes 10000 --clip-len 8
CONFIG=experiments/configs/babyai.py:smoke
stage "tokenizer -> ${OUT}/tokenizer"
uv run genie train tokenizer --cpu-devices "${CPU_DEVICES}" --config "${CONFIG}" \
  --config.data_dir "${OUT}/data" --config.level "${LEVEL}" --workdir "${OUT}/tokenizer"
COMMON=(--cpu-devices "${CPU_DEVICES}" --config.data_dir "${OUT}/data"
  --config.tokenizer_workdir "${OUT}/tokenizer" --config.level "${LEVEL}"
  --config.wam.label_fraction=0.1)
LABELLER="${OUT}/labeller_0.1"
stage "labeller -> ${LABELLER}"
train "${LABELLER}" 600 --config "${CONFIG}_labeller" "${COMMON[@]}"
if (( LABELLER_MORE > 0 )); then
  train "${LABELLER}_more${LABELLER_MORE}" "${LABELLER_MORE}" --config "${CONFIG}_labeller" \
    "${COMMON[@]}" --config.wam.init_workdir "${LABELLER}"
  LABELLER="${LABELLER}_more${LABELLER_MORE}"
fi
NAMES="${OUT}/named_0.1${LABELLER#"${OUT}/labeller_0.1"}.npz"
if [[ ! -f "${NAMES}" ]]; then
  stage "names -> ${NAMES}"
  uv run wam label --workdir "${LABELLER}" --out "${NAMES}" --cpu-devices "${CPU_DEVICES}"
fi

for seed in "${SEED_LIST[@]}"; do
  s=$(suffix "${seed}")
  BC=(--config "${CONFIG}" "${COMMON[@]}" --config.seed="${seed}" --config.wam.behaviour_cloning=True)
  ROUTE=("${BC[@]}" --config.wam.named_actions "${NAMES}")
  # The joint WAM: its own training (video loss, every mask mode), not behaviour cloning.
  JOINT=(--config "${CONFIG}" "${COMMON[@]}" --config.seed="${seed}"
    --config.wam.named_actions "${NAMES}")
  bc=${OUT}/bc_0.1_conv_ahead${s}
  route=${OUT}/named_0.1_conv_ahead${s}
  joint=${OUT}/joint_0.1${s}_from_route
  stage "seed ${seed}: BC 1200 steps without the options -> ${OUT}/bc_0.1${s}"
  train "${OUT}/bc_0.1${s}" 1200 "${BC[@]}" --config.wam.model.grid_conv=False \
    --config.wam.model.ahead_head=False

  stage "seed ${seed}: + 400 with the options, BC and the VPT route"
  pair "${bc}" 400 "${BC[@]}" --config.wam.init_workdir "${OUT}/bc_0.1${s}" \
    -- "${route}" 400 "${ROUTE[@]}" --config.wam.init_workdir "${OUT}/bc_0.1${s}"

  stage "seed ${seed}: + 800 more of each"
  pair "${bc}_more800" 800 "${BC[@]}" --config.max_to_keep=4 --config.wam.init_workdir "${bc}" \
    -- "${route}_more800" 800 "${ROUTE[@]}" --config.max_to_keep=4 \
    --config.wam.init_workdir "${route}"

  stage "seed ${seed}: + 400, the joint WAM from the route and BC"
  pair "${joint}" 400 "${JOINT[@]}" --config.wam.init_workdir "${route}_more800" \
    -- "${bc}_more1200" 400 "${BC[@]}" --config.wam.init_workdir "${bc}_more800"

  stage "seed ${seed}: + 800 more of each"
  pair "${joint}_more800" 800 "${JOINT[@]}" --config.max_to_keep=4 \
    --config.wam.init_workdir "${joint}" \
    -- "${bc}_more2000" 800 "${BC[@]}" --config.max_to_keep=4 \
    --config.wam.init_workdir "${bc}_more1200"

  if [[ "${EVAL_ROUTE}" == 1 ]]; then
    evaluate "${bc}_more800" 800
    evaluate "${route}_more800" 800
  fi
  evaluate "${joint}" 400
  evaluate "${bc}_more1200" 400
  evaluate "${joint}_more800" 800
  evaluate "${bc}_more2000" 800
done

uv run wam summarize --out "${OUT}/ten_percent.json" "${EVALUATIONS[@]}"
stage "done"
