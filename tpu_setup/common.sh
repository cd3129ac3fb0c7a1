# shellcheck shell=bash
# The scripts that source this file read its globals (SHIFT, SPLIT, REMOTE_LOG_DIR, ...).
# shellcheck disable=SC2034
# Shared by the tpu_setup scripts (sourced, never run): defaults from the environment, option
# parsing helpers, and `run`, which prints a command instead of running it under --dry-run.
#
# Environment defaults: TPU_NAME, ZONE, PROJECT (each overridden by --name, --zone, --project).
# Zone and project may stay empty: gcloud then uses its configured defaults.

TPU_NAME="${TPU_NAME:-}"
ZONE="${ZONE:-}"
PROJECT="${PROJECT:-}"
DRY_RUN=0
SHIFT=0
# Where the project lives on every worker (relative to the remote home) and where runs log.
REMOTE_DIR="${REMOTE_DIR:-genie-jax}"
REMOTE_LOG_DIR="genie-jax-logs"

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 2
}

# One line, each word quoted only when the shell would need it: what --dry-run prints.
shell_line() {
  local word quoted=()
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+^-]+$ ]]; then
      quoted+=("$word")
    else
      quoted+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  printf '%s\n' "${quoted[*]}"
}

# Runs a command, or prints it (one line) under --dry-run. Real runs echo it to stderr first.
run() {
  if ((DRY_RUN)); then
    shell_line "$@"
  else
    echo "+ $(shell_line "$@")" >&2
    "$@"
  fi
}

# A line that explains what follows; a comment, so dry-run output stays a runnable script.
note() {
  echo "# $*"
}

need_value() {
  [[ $# -ge 2 && "$2" != --* ]] || die "$1 needs a value"
}

# Handles an option every script takes (sets SHIFT to the words used), or returns 1.
common_option() {
  case "$1" in
    --name) need_value "$@"; TPU_NAME="$2"; SHIFT=2 ;;
    --zone) need_value "$@"; ZONE="$2"; SHIFT=2 ;;
    --project) need_value "$@"; PROJECT="$2"; SHIFT=2 ;;
    --dry-run) DRY_RUN=1; SHIFT=1 ;;
    -h | --help) usage; exit 0 ;;
    *) return 1 ;;
  esac
}

# `--key=value` -> `--key value`, so each script's case statement sees one form.
split_equals() {
  if [[ "$1" == --*=* ]]; then
    SPLIT=("${1%%=*}" "${1#*=}")
  else
    SPLIT=("$1")
  fi
}

require_name() {
  [[ -n "$TPU_NAME" ]] || die "missing --name (or \$TPU_NAME): the TPU VM / slice to act on"
  [[ "$TPU_NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
    die "--name '$TPU_NAME' must be lower-case letters, digits and dashes, starting with a letter"
}

# gcloud's --zone / --project flags for the values that are set.
scope_flags() {
  SCOPE=()
  if [[ -n "$ZONE" ]]; then SCOPE+=("--zone=$ZONE"); fi
  if [[ -n "$PROJECT" ]]; then SCOPE+=("--project=$PROJECT"); fi
}

# `gcloud compute tpus tpu-vm ssh NAME --worker=W --command=CMD` with the scope flags.
ssh_workers() {
  local worker="$1" command="$2"
  scope_flags
  run gcloud compute tpus tpu-vm ssh "$TPU_NAME" "--worker=$worker" "${SCOPE[@]}" \
    "--command=$command"
}

# The user's command with `--distributed on` right after `genie` / `wam` (a global option of
# both CLIs), so jax.distributed.initialize runs and picks up the cluster. Sets COMMAND.
with_distributed_on() {
  COMMAND=()
  local word added=0
  for word in "$@"; do
    COMMAND+=("$word")
    if ((!added)) && [[ "$(basename -- "$word")" =~ ^(genie|wam)$ ]]; then
      COMMAND+=(--distributed on)
      added=1
    fi
  done
  ((added)) || die "the command must run \`genie\` or \`wam\` (e.g. -- uv run genie train ...)"
}
