#!/usr/bin/env bash
# Runs one command on every worker at once, in the background, joined by jax.distributed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: launch.sh --name NAME [--run RUN] [--zone Z] [--project P] [--dry-run] -- COMMAND...

Starts COMMAND on all workers at once (gcloud compute tpus tpu-vm ssh --worker=all), from
the project directory ~/genie-jax (or $REMOTE_DIR), under nohup in the background, with
`--distributed on` added right after `genie` / `wam`, so every worker calls
jax.distributed.initialize and jax finds the slice's topology itself. Each worker writes
its own log, ~/genie-jax-logs/RUN.log, and RUN.pid beside it (stop a run with
`kill $(cat ~/genie-jax-logs/RUN.pid)` on every worker). Follow the logs with logs.sh.

  --run RUN    name of the log and pid files (default: run)
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run    print the gcloud command, run nothing

example:
  launch.sh --name genie-pod --run dynamics -- uv run genie train dynamics \
      --config experiments/configs/coinrun.py:paper --config.data_dir=runs/data/coinrun \
      --workdir runs/dynamics
EOF
}

RUN_NAME=run
while (($#)); do
  if [[ "$1" == -- ]]; then
    shift
    break
  fi
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --run) need_value "$@"; RUN_NAME="$2"; shift 2 ;;
    *) common_option "$@" || die "unknown option $1 (commands go after --; see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
(($#)) || die "missing the command to run, after -- (e.g. -- uv run genie train ...)"
[[ "$RUN_NAME" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--run '$RUN_NAME' must be a plain file name"
with_distributed_on "$@"

log="\$HOME/$REMOTE_LOG_DIR/$RUN_NAME.log"
pid="\$HOME/$REMOTE_LOG_DIR/$RUN_NAME.pid"
# The command's words are quoted for the workers' shell exactly as given here.
job="$(shell_line "${COMMAND[@]}")"
# shellcheck disable=SC2016
path='export PATH="$HOME/.local/bin:$PATH"'
note "launch on every worker of $TPU_NAME: $job"
note "logs: ~/$REMOTE_LOG_DIR/$RUN_NAME.log on each worker (tpu_setup/logs.sh --run $RUN_NAME)"
ssh_workers all "set -e; $path; mkdir -p \$HOME/$REMOTE_LOG_DIR; cd \$HOME/$REMOTE_DIR; nohup $job > $log 2>&1 < /dev/null & echo \$! > $pid"
