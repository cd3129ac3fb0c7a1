#!/usr/bin/env bash
# Streams the log of a run started by launch.sh, from one worker or from all of them.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: logs.sh --name NAME [--worker N|all] [--run RUN] [--lines K] [--no-follow]
               [--zone Z] [--project P] [--dry-run]

Runs `tail -f` on ~/genie-jax-logs/RUN.log of one worker (default 0: the process that
writes metrics and summaries) or of all workers (their lines interleave, each prefixed by its
worker's host name). Ctrl-C stops the stream, not the run.

  --worker N|all  which worker (default 0)
  --run RUN       the launch.sh run name (default: run)
  --lines K       lines of history first (default 100)
  --no-follow     print and exit instead of following
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run       print the gcloud command, run nothing
EOF
}

WORKER=0
RUN_NAME=run
LINES=100
FOLLOW=1
while (($#)); do
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --worker) need_value "$@"; WORKER="$2"; shift 2 ;;
    --run) need_value "$@"; RUN_NAME="$2"; shift 2 ;;
    --lines) need_value "$@"; LINES="$2"; shift 2 ;;
    --no-follow) FOLLOW=0; shift ;;
    *) common_option "$@" || die "unknown option $1 (see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
[[ "$WORKER" =~ ^([0-9]+|all)$ ]] || die "--worker takes a worker number or all, got '$WORKER'"
[[ "$LINES" =~ ^[0-9]+$ ]] || die "--lines takes a number, got '$LINES'"
[[ "$RUN_NAME" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--run '$RUN_NAME' must be a plain file name"

follow=""
if ((FOLLOW)); then follow="-f "; fi
log="\$HOME/$REMOTE_LOG_DIR/$RUN_NAME.log"
note "log of run $RUN_NAME on worker $WORKER of $TPU_NAME"
# Each line starts with the worker's host name, so interleaved streams stay attributable.
ssh_workers "$WORKER" "h=\$(hostname); tail -n $LINES $follow$log | sed -u \"s/^/\$h | /\""
