#!/usr/bin/env bash
# GPU nodes (or any hosts): one process per node, joined through the JAX_* environment.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: gpu_multinode.sh --hosts H0,H1,... [--port P] [--run RUN] [--dry-run] -- COMMAND...
       gpu_multinode.sh --slurm [--coordinator HOST] [--port P] [--dry-run] -- COMMAND...
       gpu_multinode.sh --coordinator HOST[:PORT] --num-processes N --process-id I
                        [--dry-run] -- COMMAND...

Runs COMMAND once per node with JAX_COORDINATOR_ADDRESS (the first node, port P),
JAX_NUM_PROCESSES and JAX_PROCESS_ID set, and `--distributed on` added after `genie` / `wam`,
so every process calls jax.distributed.initialize with those values; each process uses all
GPUs of its node. Install the project on every node first, with the CUDA build of jax:
`uv sync --frozen && uv pip install "jax[cuda12]==<the locked jax version>"`.

  --hosts H0,H1,...  start the command on each host over ssh, from ~/genie-jax (or
                     $REMOTE_DIR), under nohup; log in ~/genie-jax-logs/RUN.log per host.
                     H0 is the coordinator; the hosts must reach H0 on port P
  --slurm            this is one task of `srun --ntasks-per-node=1 ...`: the process id and
                     count come from SLURM_PROCID / SLURM_NTASKS, the coordinator is the first
                     node of SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST) unless --coordinator
                     names it; the command runs here, in the foreground
  --coordinator, --num-processes, --process-id
                     set by hand, for this node; the command runs here, in the foreground
  --port P           coordinator port (default 8476)
  --run RUN          log / pid file name with --hosts (default: run)
  --dry-run          print each node's environment and command, run nothing
EOF
}

HOSTS=""
SLURM=0
COORDINATOR=""
NUM_PROCESSES=""
PROCESS_ID=""
PORT=8476
RUN_NAME=run
while (($#)); do
  if [[ "$1" == -- ]]; then
    shift
    break
  fi
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --hosts) need_value "$@"; HOSTS="$2"; shift 2 ;;
    --slurm) SLURM=1; shift ;;
    --coordinator) need_value "$@"; COORDINATOR="$2"; shift 2 ;;
    --num-processes) need_value "$@"; NUM_PROCESSES="$2"; shift 2 ;;
    --process-id) need_value "$@"; PROCESS_ID="$2"; shift 2 ;;
    --port) need_value "$@"; PORT="$2"; shift 2 ;;
    --run) need_value "$@"; RUN_NAME="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (commands go after --; see --help)" ;;
  esac
done

(($#)) || die "missing the command to run, after -- (e.g. -- uv run genie train ...)"
with_distributed_on "$@"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port takes a number, got '$PORT'"
modes=$(((${#HOSTS} > 0) + SLURM + (${#NUM_PROCESSES} + ${#PROCESS_ID} > 0)))
((modes == 1)) || die "choose one of --hosts, --slurm, or --num-processes with --process-id"

# `--coordinator HOST` gets the port; `HOST:PORT` keeps its own.
address() {
  if [[ "$1" == *:* ]]; then echo "$1"; else echo "$1:$PORT"; fi
}

# One node of the run here, in the foreground: prints or execs `env JAX_*=... COMMAND`.
run_here() {
  local env=("JAX_COORDINATOR_ADDRESS=$1" "JAX_NUM_PROCESSES=$2" "JAX_PROCESS_ID=$3")
  note "node $3 of $2: ${env[*]}"
  if ((DRY_RUN)); then
    shell_line env "${env[@]}" "${COMMAND[@]}"
  else
    exec env "${env[@]}" "${COMMAND[@]}"
  fi
}

if ((SLURM)); then
  [[ "${SLURM_NTASKS:-}" =~ ^[0-9]+$ && "${SLURM_PROCID:-}" =~ ^[0-9]+$ ]] ||
    die "--slurm needs SLURM_NTASKS and SLURM_PROCID: run it under srun"
  if [[ -z "$COORDINATOR" ]]; then
    nodes="${SLURM_STEP_NODELIST:-${SLURM_JOB_NODELIST:-}}"
    first="${nodes%%,*}"
    # `gpu[003-004,7]` -> gpu003: the first node of a compressed list, no scontrol needed.
    if [[ "$nodes" =~ ^([^,\[]*)\[([0-9]+) ]]; then first="${BASH_REMATCH[1]}${BASH_REMATCH[2]}"; fi
    [[ -n "$first" ]] || die "--slurm found no SLURM_STEP_NODELIST / SLURM_JOB_NODELIST; pass --coordinator"
    COORDINATOR="$first"
  fi
  run_here "$(address "$COORDINATOR")" "$SLURM_NTASKS" "$SLURM_PROCID"
elif [[ -n "$HOSTS" ]]; then
  IFS=, read -r -a hosts <<<"$HOSTS"
  ((${#hosts[@]} >= 1)) || die "--hosts lists no host"
  [[ "$RUN_NAME" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--run '$RUN_NAME' must be a plain file name"
  coordinator="$(address "${hosts[0]}")"
  job="$(shell_line "${COMMAND[@]}")"
  log="\$HOME/$REMOTE_LOG_DIR/$RUN_NAME.log"
  pid="\$HOME/$REMOTE_LOG_DIR/$RUN_NAME.pid"
  # shellcheck disable=SC2016
  path='export PATH="$HOME/.local/bin:$PATH"'
  for i in "${!hosts[@]}"; do
    node_env="JAX_COORDINATOR_ADDRESS=$coordinator JAX_NUM_PROCESSES=${#hosts[@]} JAX_PROCESS_ID=$i"
    note "node $i of ${#hosts[@]} (${hosts[$i]}): $node_env"
    run ssh "${hosts[$i]}" "set -e; $path; mkdir -p \$HOME/$REMOTE_LOG_DIR; cd \$HOME/$REMOTE_DIR; $node_env nohup $job > $log 2>&1 < /dev/null & echo \$! > $pid"
  done
else
  [[ -n "$COORDINATOR" ]] || die "--num-processes / --process-id need --coordinator HOST[:PORT]"
  [[ "$NUM_PROCESSES" =~ ^[1-9][0-9]*$ ]] || die "--num-processes takes a positive number"
  if [[ ! "$PROCESS_ID" =~ ^[0-9]+$ ]] || ((PROCESS_ID >= NUM_PROCESSES)); then
    die "--process-id must be in 0..$((NUM_PROCESSES - 1)), got '$PROCESS_ID'"
  fi
  run_here "$(address "$COORDINATOR")" "$NUM_PROCESSES" "$PROCESS_ID"
fi
