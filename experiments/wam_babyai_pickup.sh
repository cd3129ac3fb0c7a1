#!/usr/bin/env bash
# The 10%-label comparison on PickupLoc of RESULTS.md ("PickupLoc with the policy reading its
# target"): the joint WAM against behaviour cloning at equal training steps, both with
# `policy_reads_target`, one chain per training seed, on the smoke preset:
#
#   tokenizer                        the genie_jax tokenizer on GoToLocal frames (TOKENIZER_LEVEL)
#   labeller_0.1, ..._more800        the 10% labeller on PickupLoc, 600 + 800 steps
#   named_0.1_more800.npz            its names for every training transition
#   bc_0.1_prt S                     BC on the 10% real labels, 1200 steps
#   joint_0.1_prt S_from_bc          + 800 steps of the joint WAM (video + real/named actions)
#   bc_0.1_prt S_more800             + 800 steps of BC: BC at the joint WAM's steps (2000)
#
# (S: "" for seed 0, "_seedN" otherwise.) The two runs from bc_0.1_prt S start from its
# 1200-step checkpoint and train side by side. The data, tokenizer, labeller and names are
# built once (the labeller's training seed is 0 for every chain); the training seed moves the
# WAM and BC runs only. Both arms at 2000 steps are evaluated in closed loop (EVAL_EPISODES
# test seeds, T 1.0, no imagined frames) and `wam summarize` pairs each joint WAM with BC of
# its seed (OUT/pickup_ten_percent.json).
#
#   experiments/wam_babyai_pickup.sh [OUT]
#
# Resumable as experiments/wam_babyai_ten_percent.sh is. Settable in the environment: SEEDS
# (default "0 1 2"), EVAL_EPISODES (default 500), TOKENIZER_LEVEL (default
# BabyAI-GoToLocal-v0, the tokenizer the recorded runs used; BabyAI-PickupLoc-v0 trains it on
# the PickupLoc data instead, unmeasured) and CPU_DEVICES (default 2).
set -euo pipefail

OUT=${1:-runs/babyai_pickup}
SEEDS=${SEEDS:-"0 1 2"}
EVAL_EPISODES=${EVAL_EPISODES:-500}
TOKENIZER_LEVEL=${TOKENIZER_LEVEL:-BabyAI-GoToLocal-v0}
CPU_DEVICES=${CPU_DEVICES:-2}
LEVEL=BabyAI-PickupLoc-v0
read -r -a SEED_LIST <<< "${SEEDS}"
cd "$(dirname "$0")/.."

# shellcheck source=SCRIPTDIR/wam_chain.sh
source experiments/wam_chain.sh

stage "data -> ${OUT}/data"
uv run wam data babyai --out "${OUT}/data" --level "${LEVEL}" --episodes 10000 --clip-len 8
TOKENIZER_DATA="${OUT}/data"
if [[ "${TOKENIZER_LEVEL}" != "${LEVEL}" ]]; then
  TOKENIZER_DATA="${OUT}/tokenizer_data"
  stage "tokenizer data -> ${TOKENIZER_DATA}"
  uv run wam data babyai --out "${TOKENIZER_DATA}" --level "${TOKENIZER_LEVEL}" \
    --episodes 10000 --clip-len 8
fi
CONFIG=experiments/configs/babyai.py:smoke
stage "tokenizer -> ${OUT}/tokenizer"
uv run genie train tokenizer --cpu-devices "${CPU_DEVICES}" --config "${CONFIG}" \
  --config.data_dir "${TOKENIZER_DATA}" --config.level "${TOKENIZER_LEVEL}" \
  --workdir "${OUT}/tokenizer"
COMMON=(--cpu-devices "${CPU_DEVICES}" --config.data_dir "${OUT}/data"
  --config.tokenizer_workdir "${OUT}/tokenizer" --config.level "${LEVEL}"
  --config.wam.label_fraction=0.1)
LABELLER="${OUT}/labeller_0.1"
stage "labeller -> ${LABELLER}, ${LABELLER}_more800"
train "${LABELLER}" 600 --config "${CONFIG}_labeller" "${COMMON[@]}"
train "${LABELLER}_more800" 800 --config "${CONFIG}_labeller" "${COMMON[@]}" \
  --config.wam.init_workdir "${LABELLER}"
NAMES="${OUT}/named_0.1_more800.npz"
if [[ ! -f "${NAMES}" ]]; then
  stage "names -> ${NAMES}"
  uv run wam label --workdir "${LABELLER}_more800" --out "${NAMES}" \
    --cpu-devices "${CPU_DEVICES}"
fi

for seed in "${SEED_LIST[@]}"; do
  s=$(suffix "${seed}")
  PRT=(--config "${CONFIG}" "${COMMON[@]}" --config.seed="${seed}" --config.max_to_keep=4
    --config.wam.model.policy_reads_target=True)
  bc=${OUT}/bc_0.1_prt${s}
  FROM_BC=(--config.wam.init_workdir "${bc}" --config.wam.init_step=1200)
  stage "seed ${seed}: BC 1200 steps -> ${bc}"
  train "${bc}" 1200 "${PRT[@]}" --config.wam.behaviour_cloning=True

  stage "seed ${seed}: + 800, the joint WAM and BC"
  pair "${OUT}/joint_0.1_prt${s}_from_bc" 800 "${PRT[@]}" --config.wam.named_actions "${NAMES}" \
    "${FROM_BC[@]}" \
    -- "${bc}_more800" 800 "${PRT[@]}" --config.wam.behaviour_cloning=True "${FROM_BC[@]}"

  evaluate "${OUT}/joint_0.1_prt${s}_from_bc" 800
  evaluate "${bc}_more800" 800
done

uv run wam summarize --out "${OUT}/pickup_ten_percent.json" "${EVALUATIONS[@]}"
stage "done"
