#!/usr/bin/env bash
# The BabyAI WAM study for one preset: data -> tokenizer -> LAM -> for each label fraction a
# WAM, a behaviour-cloning baseline and (below 100%) a labeller WAM (the `PRESET_labeller`
# config) and BC on its named actions (and, at 10%, the latent-action route) -> closed-loop
# evaluation of every run (right after its training) -> OUT/study.json (one row per run).
#
#   experiments/wam_babyai_study.sh PRESET [OUT]      PRESET: smoke | cpu
#
# Resumable like reproduce_coinrun.sh: finished data is kept, runs resume from their newest
# checkpoint, evaluation is redone. Settable in the environment: FRACTIONS (default
# "0.01 0.1 1.0"), EVAL_EPISODES (default 100), LATENT (default 1; 0 skips the latent-action
# route), NAMED (default 1; 0 skips BC on the WAM's named actions below 100% labels),
# EPISODES (default 1000 for smoke, 10000 for cpu), NOISE (default 0: the data's
# `--expert-noise`, a DART-style build whose episodes the bot recovers from random movements),
# BLOCKER (default 0: the data's `--blocker-noise`, steps that meet objects the mission does not
# name), EXPERT (default bot: the data's `--expert`; full_view, a bot made afresh at every state
# that sees the whole room) and OVERRIDES (extra `--config.KEY=VALUE` arguments for every training run, e.g.
# "--config.wam.num_steps=1200").
set -euo pipefail

PRESET=${1:?usage: experiments/wam_babyai_study.sh smoke|cpu [OUT]}
OUT=${2:-runs/babyai_${PRESET}}
CONFIG="experiments/configs/babyai.py:${PRESET}"
FRACTIONS=${FRACTIONS:-"0.01 0.1 1.0"}
EVAL_EPISODES=${EVAL_EPISODES:-100}
LATENT=${LATENT:-1}
NAMED=${NAMED:-1}
NOISE=${NOISE:-0}
BLOCKER=${BLOCKER:-0}
EXPERT=${EXPERT:-bot}
cd "$(dirname "$0")/.."

# cpu: 10000 episodes, where the rotary backbone stops memorizing (RESULTS.md).
case "${PRESET}" in
  smoke) EPISODES=${EPISODES:-1000} ;;
  cpu) EPISODES=${EPISODES:-10000} ;;
  *) echo "unknown preset ${PRESET}: smoke or cpu" >&2; exit 2 ;;
esac
read -r -a EXTRA <<< "${OVERRIDES:-}"

started=$(date +%s)
stage() { echo "== $1 ($(( $(date +%s) - started ))s)"; }

stage "data -> ${OUT}/data"
uv run wam data babyai --out "${OUT}/data" --level BabyAI-GoToLocal-v0 --episodes "${EPISODES}" \
  --clip-len 8 --expert "${EXPERT}" --expert-noise "${NOISE}" --blocker-noise "${BLOCKER}"
COMMON=(--config "${CONFIG}" --config.data_dir "${OUT}/data" "${EXTRA[@]}")
for part in tokenizer lam; do
  stage "${part} -> ${OUT}/${part}"
  uv run genie train "${part}" "${COMMON[@]}" --workdir "${OUT}/${part}"
done
WAM=("${COMMON[@]}" --config.tokenizer_workdir "${OUT}/tokenizer")
LABELLER=(--config "${CONFIG}_labeller" --config.data_dir "${OUT}/data" "${EXTRA[@]}"
  --config.tokenizer_workdir "${OUT}/tokenizer")
RUNS=()
# Each run is evaluated as soon as it is trained, so a study cut short keeps its finished rows.
# Behaviour cloning trains no video loss: its runs are evaluated without imagined frames.
evaluate() {
  stage "closed-loop evaluation -> $1/eval"
  uv run wam eval --workdir "$1" --episodes "${EVAL_EPISODES}" "${@:2}"
  RUNS+=("$1")
}
for fraction in ${FRACTIONS}; do
  stage "wam, ${fraction} labelled -> ${OUT}/wam_${fraction}"
  uv run wam train "${WAM[@]}" --config.wam.label_fraction="${fraction}" \
    --workdir "${OUT}/wam_${fraction}"
  evaluate "${OUT}/wam_${fraction}"
  stage "behaviour cloning, ${fraction} labelled -> ${OUT}/bc_${fraction}"
  uv run wam train "${WAM[@]}" --config.wam.label_fraction="${fraction}" \
    --config.wam.behaviour_cloning=True --workdir "${OUT}/bc_${fraction}"
  evaluate "${OUT}/bc_${fraction}" --no-imagine
  if [[ "${NAMED}" == 1 && "${fraction}" != "1.0" ]]; then
    # The labeller route: a WAM set up as a labeller (the `_labeller` variant, same labels)
    # names the hidden actions once, frozen; BC then learns from the real and named actions.
    stage "labeller, ${fraction} labelled -> ${OUT}/labeller_${fraction}"
    uv run wam train "${LABELLER[@]}" --config.wam.label_fraction="${fraction}" \
      --workdir "${OUT}/labeller_${fraction}"
    stage "named actions from labeller_${fraction} -> ${OUT}/bc_named_${fraction}"
    uv run wam label --workdir "${OUT}/labeller_${fraction}" --out "${OUT}/named_${fraction}.npz"
    # It starts from the BC run's weights (the labelled episodes first; from scratch it read
    # its mission later and solved less, RESULTS.md "The VPT route").
    uv run wam train "${WAM[@]}" --config.wam.label_fraction="${fraction}" \
      --config.wam.behaviour_cloning=True --config.wam.named_actions "${OUT}/named_${fraction}.npz" \
      --config.wam.init_workdir "${OUT}/bc_${fraction}" --workdir "${OUT}/bc_named_${fraction}"
    evaluate "${OUT}/bc_named_${fraction}" --no-imagine
  fi
done
if [[ "${LATENT}" == 1 ]]; then
  stage "latent-action route (10% labelled) -> ${OUT}/latent_pretrain, ${OUT}/latent_align"
  uv run wam train "${WAM[@]}" --config.lam_workdir "${OUT}/lam" --config.wam.stage=pretrain \
    --workdir "${OUT}/latent_pretrain"
  uv run wam train "${WAM[@]}" --config.lam_workdir "${OUT}/lam" --config.wam.stage=align \
    --config.wam.label_fraction=0.1 --config.wam.init_workdir "${OUT}/latent_pretrain" \
    --workdir "${OUT}/latent_align"
  evaluate "${OUT}/latent_align"
fi

uv run wam summarize --out "${OUT}/study.json" "${RUNS[@]}"
stage "done"
