#!/usr/bin/env bash
# The CoinRun pipeline for one preset: data -> tokenizer -> LAM -> dynamics -> evaluation.
#
#   experiments/reproduce_coinrun.sh PRESET [OUT]      PRESET: smoke | cpu | case_study | paper
#
# Resumable: a finished dataset is not rebuilt, each training run resumes from its newest
# checkpoint, and evaluation is re-run on the newest dynamics checkpoint. Extra `genie train`
# flags for every stage can be passed in GENIE_TRAIN_FLAGS (e.g. "--config.mesh_shape=(-1,2,1)").
set -euo pipefail

PRESET=${1:?usage: experiments/reproduce_coinrun.sh smoke|cpu|case_study|paper [OUT]}
OUT=${2:-runs/coinrun_${PRESET}}
CONFIG="experiments/configs/coinrun.py:${PRESET}"
cd "$(dirname "$0")/.."

# Episodes over all splits (level seeds 0-10000: train 0-8000, validation 8000-9000, test
# 9000-10000), the cap on episode length, and how many test clips evaluation uses.
case "${PRESET}" in
  smoke) EPISODES=24; MAX_STEPS=400; EVAL_CLIPS=32 ;;
  cpu) EPISODES=300; MAX_STEPS=1000; EVAL_CLIPS=256 ;;
  case_study | paper) EPISODES=10000; MAX_STEPS=1000; EVAL_CLIPS=1024 ;;
  *) echo "unknown preset ${PRESET}: smoke, cpu, case_study or paper" >&2; exit 2 ;;
esac

started=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - started ))s)"; }

stage "data -> ${OUT}/data"
uv run genie data coinrun --out "${OUT}/data" --episodes "${EPISODES}" \
  --max-steps "${MAX_STEPS}" --workers 2

COMMON=(--config "${CONFIG}" --config.data_dir "${OUT}/data")
# shellcheck disable=SC2206
EXTRA=(${GENIE_TRAIN_FLAGS:-})
for part in tokenizer lam; do
  stage "${part} -> ${OUT}/${part}"
  uv run genie train "${part}" "${COMMON[@]}" --workdir "${OUT}/${part}" "${EXTRA[@]}"
done
stage "dynamics -> ${OUT}/dynamics"
uv run genie train dynamics "${COMMON[@]}" --workdir "${OUT}/dynamics" \
  --config.tokenizer_workdir "${OUT}/tokenizer" --config.lam_workdir "${OUT}/lam" "${EXTRA[@]}"

stage "evaluation -> ${OUT}/dynamics/eval"
uv run genie eval --workdir "${OUT}/dynamics" --num-clips "${EVAL_CLIPS}"
stage "done"
