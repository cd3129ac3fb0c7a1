#!/usr/bin/env bash
# The BabyAI WAM study for one preset: data -> tokenizer -> LAM -> for each label fraction a
# WAM, a behaviour-cloning baseline and (below 100%) a labeller WAM (the `PRESET_labeller`
# config) and BC on its named actions (and, at 10%, the latent-action route) -> closed-loop
# evaluation of every run (right after its training) -> OUT/study.json (one row per run, and
# the mean and spread over training seeds of each kind of run).
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
# that sees the whole room), SEEDS (default "0": the training seeds of every policy run; at 10%
# labels BC's success moves by tens of points with its seed, so compare methods over several,
# e.g. "0 1 2 3"; the tokenizer, LAM and labeller are trained once), DAGGER (default 0; 1:
# at 100% labels each BC run plays DAGGER_EPISODES (default 1000) episodes on training seeds
# DAGGER_SEEDS (default 8000:18000, past the expert data's), the full-view expert labels every
# state it reaches, and BC continues from it on the expert's and these episodes) and OVERRIDES
# (extra `--config.KEY=VALUE` arguments for every training run, e.g.
# "--config.wam.num_steps=1200"). Where runs start from another run's weights (BC on named
# actions, the latent route, DAgger), BC continues from its own run as long (bc_more_*), so
# `wam summarize` compares every method with BC at equal training steps.
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
SEEDS=${SEEDS:-0}
DAGGER=${DAGGER:-0}
DAGGER_EPISODES=${DAGGER_EPISODES:-1000}
DAGGER_SEEDS=${DAGGER_SEEDS:-8000:18000}
read -r -a SEED_LIST <<< "${SEEDS}"
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
# Run names carry a training seed other than 0: bc_0.1, bc_0.1_seed1, ...
suffix() { if [[ "$1" == 0 ]]; then echo ""; else echo "_seed$1"; fi; }
# Whether a run at these labels starts from another run's weights (BC on named actions, the
# latent route's align stage, DAgger): it has trained the steps of both runs, so BC continued
# as long from its own run (bc_more_*) is its baseline at equal steps.
continued() {
  if [[ "$1" == "1.0" ]]; then
    [[ "${DAGGER}" == 1 ]]
  else
    [[ "${NAMED}" == 1 || ( "${LATENT}" == 1 && "$1" == "0.1" ) ]]
  fi
}
for fraction in ${FRACTIONS}; do
  for seed in "${SEED_LIST[@]}"; do
    tag="${fraction}$(suffix "${seed}")"
    stage "wam, ${fraction} labelled, seed ${seed} -> ${OUT}/wam_${tag}"
    uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.wam.label_fraction="${fraction}" \
      --workdir "${OUT}/wam_${tag}"
    evaluate "${OUT}/wam_${tag}"
    stage "behaviour cloning, ${fraction} labelled, seed ${seed} -> ${OUT}/bc_${tag}"
    uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.wam.label_fraction="${fraction}" \
      --config.wam.behaviour_cloning=True --workdir "${OUT}/bc_${tag}"
    evaluate "${OUT}/bc_${tag}" --no-imagine
    if continued "${fraction}"; then
      stage "behaviour cloning continued, ${fraction} labelled, seed ${seed} -> ${OUT}/bc_more_${tag}"
      uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.wam.label_fraction="${fraction}" \
        --config.wam.behaviour_cloning=True --config.wam.init_workdir "${OUT}/bc_${tag}" \
        --workdir "${OUT}/bc_more_${tag}"
      evaluate "${OUT}/bc_more_${tag}" --no-imagine
    fi
    if [[ "${DAGGER}" == 1 && "${fraction}" == "1.0" ]]; then
      # DAgger: BC plays, the expert labels the states it reached, BC learns from both.
      stage "on-policy data from bc_${tag} -> ${OUT}/on_policy_${tag}"
      uv run wam data babyai --out "${OUT}/on_policy_${tag}" --level BabyAI-GoToLocal-v0 \
        --episodes "${DAGGER_EPISODES}" --seeds "${DAGGER_SEEDS}" --actor "${OUT}/bc_${tag}"
      stage "BC on expert + on-policy episodes, seed ${seed} -> ${OUT}/bc_dagger_${tag}"
      uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.wam.label_fraction=1.0 \
        --config.wam.behaviour_cloning=True --config.wam.on_policy_data_dir "${OUT}/on_policy_${tag}" \
        --config.wam.init_workdir "${OUT}/bc_${tag}" --workdir "${OUT}/bc_dagger_${tag}"
      evaluate "${OUT}/bc_dagger_${tag}" --no-imagine
    fi
  done
  if [[ "${NAMED}" == 1 && "${fraction}" != "1.0" ]]; then
    # The labeller route: a WAM set up as a labeller (the `_labeller` variant, same labels)
    # names the hidden actions once, frozen; BC then learns from the real and named actions.
    stage "labeller, ${fraction} labelled -> ${OUT}/labeller_${fraction}"
    uv run wam train "${LABELLER[@]}" --config.wam.label_fraction="${fraction}" \
      --workdir "${OUT}/labeller_${fraction}"
    uv run wam label --workdir "${OUT}/labeller_${fraction}" --out "${OUT}/named_${fraction}.npz"
    for seed in "${SEED_LIST[@]}"; do
      tag="${fraction}$(suffix "${seed}")"
      stage "BC on named actions, ${fraction} labelled, seed ${seed} -> ${OUT}/bc_named_${tag}"
      # It starts from the BC run of its seed (the labelled episodes first; from scratch it read
      # its mission later and solved less, RESULTS.md "The VPT route").
      uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.wam.label_fraction="${fraction}" \
        --config.wam.behaviour_cloning=True --config.wam.named_actions "${OUT}/named_${fraction}.npz" \
        --config.wam.init_workdir "${OUT}/bc_${tag}" --workdir "${OUT}/bc_named_${tag}"
      evaluate "${OUT}/bc_named_${tag}" --no-imagine
    done
  fi
done
if [[ "${LATENT}" == 1 ]]; then
  for seed in "${SEED_LIST[@]}"; do
    tag="$(suffix "${seed}")"
    stage "latent-action route (10% labelled), seed ${seed} -> ${OUT}/latent_pretrain${tag}, ${OUT}/latent_align${tag}"
    uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.lam_workdir "${OUT}/lam" \
      --config.wam.stage=pretrain --workdir "${OUT}/latent_pretrain${tag}"
    uv run wam train "${WAM[@]}" --config.seed="${seed}" --config.lam_workdir "${OUT}/lam" \
      --config.wam.stage=align --config.wam.label_fraction=0.1 \
      --config.wam.init_workdir "${OUT}/latent_pretrain${tag}" --workdir "${OUT}/latent_align${tag}"
    evaluate "${OUT}/latent_align${tag}"
  done
fi

uv run wam summarize --out "${OUT}/study.json" "${RUNS[@]}"
stage "done"
