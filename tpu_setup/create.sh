#!/usr/bin/env bash
# Creates a Cloud TPU VM or pod slice through a queued resource and waits until it is ACTIVE.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: create.sh --name NAME --accelerator TYPE [--spot] [--runtime-version V]
                 [--zone Z] [--project P] [--no-wait] [--timeout S] [--poll S] [--dry-run]

Requests a TPU VM / pod slice as a queued resource (queued resource id = node id = NAME),
then polls `queued-resources describe` until its state is ACTIVE (FAILED or SUSPENDED stop
with an error).

  --accelerator TYPE   v4-N, v5litepod-N (v5e), v5p-N or v6e-N, e.g. v5p-32
                       (default $ACCELERATOR)
  --runtime-version V  default by family: v4 tpu-ubuntu2204-base, v5litepod
                       v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
  --spot               Spot capacity (cheaper, may be preempted)
  --no-wait            return once the request is queued
  --timeout S          give up waiting after S seconds (default 7200)
  --poll S             seconds between state checks (default 30)
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run            print the gcloud commands, run nothing
EOF
}

ACCELERATOR="${ACCELERATOR:-}"
RUNTIME_VERSION=""
SPOT=0
WAIT=1
TIMEOUT=7200
POLL=30
while (($#)); do
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --accelerator) need_value "$@"; ACCELERATOR="$2"; shift 2 ;;
    --runtime-version) need_value "$@"; RUNTIME_VERSION="$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --no-wait) WAIT=0; shift ;;
    --timeout) need_value "$@"; TIMEOUT="$2"; shift 2 ;;
    --poll) need_value "$@"; POLL="$2"; shift 2 ;;
    *) common_option "$@" || die "unknown option $1 (see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
[[ -n "$ACCELERATOR" ]] || die "missing --accelerator (e.g. v5p-32)"
[[ "$TIMEOUT" =~ ^[0-9]+$ && "$POLL" =~ ^[1-9][0-9]*$ ]] ||
  die "--timeout and --poll take whole seconds"
family="${ACCELERATOR%-*}"
case "$family" in
  v4) default_runtime=tpu-ubuntu2204-base ;;
  v5litepod) default_runtime=v2-alpha-tpuv5-lite ;;
  v5p) default_runtime=v2-alpha-tpuv5 ;;
  v6e) default_runtime=v2-alpha-tpuv6e ;;
  *) die "unknown accelerator family '$family' in '$ACCELERATOR' (known: v4, v5litepod (v5e), v5p, v6e)" ;;
esac
[[ "${ACCELERATOR##*-}" =~ ^[0-9]+$ && "$ACCELERATOR" == *-* ]] ||
  die "accelerator type '$ACCELERATOR' must end in a size, e.g. $family-32"
RUNTIME_VERSION="${RUNTIME_VERSION:-$default_runtime}"

scope_flags
create=(gcloud compute tpus queued-resources create "$TPU_NAME" "--node-id=$TPU_NAME"
  "--accelerator-type=$ACCELERATOR" "--runtime-version=$RUNTIME_VERSION")
if ((SPOT)); then create+=(--spot); fi
describe=(gcloud compute tpus queued-resources describe "$TPU_NAME" "${SCOPE[@]}"
  "--format=value(state.state)")

tier=on-demand
if ((SPOT)); then tier=spot; fi
note "queued resource $TPU_NAME: $ACCELERATOR, runtime $RUNTIME_VERSION, $tier"
run "${create[@]}" "${SCOPE[@]}"
if ((!WAIT)); then
  exit 0
fi
if ((DRY_RUN)); then
  note "then, every ${POLL} s until the state is ACTIVE (at most ${TIMEOUT} s):"
  run "${describe[@]}"
  exit 0
fi
deadline=$((SECONDS + TIMEOUT))
while :; do
  state="$("${describe[@]}")"
  echo "$(date +%H:%M:%S) $TPU_NAME: ${state:-unknown}" >&2
  case "$state" in
    ACTIVE) break ;;
    FAILED | SUSPENDED | SUSPENDING)
      die "queued resource $TPU_NAME is $state (gcloud compute tpus queued-resources describe $TPU_NAME)" ;;
  esac
  ((SECONDS < deadline)) || die "$TPU_NAME not ACTIVE after ${TIMEOUT} s (still ${state:-unknown})"
  sleep "$POLL"
done
echo "$TPU_NAME is ACTIVE; next: tpu_setup/install.sh --name $TPU_NAME ..." >&2
