#!/usr/bin/env bash
# Deletes the queued resource made by create.sh together with its TPU VMs (all their disks).
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: delete.sh --name NAME [--yes] [--zone Z] [--project P] [--dry-run]

Deletes queued resource NAME and, first, its TPU VMs (--force): everything on the workers'
disks goes with them (logs, local checkpoints, copied data). Asks for confirmation on the
terminal unless --yes; without a terminal it refuses unless --yes. gcloud's own prompt is
answered by --quiet.

  --yes        do not ask
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run    print the gcloud command, ask nothing, run nothing
EOF
}

YES=0
while (($#)); do
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --yes | -y) YES=1; shift ;;
    *) common_option "$@" || die "unknown option $1 (see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
if ((!YES && !DRY_RUN)); then
  [[ -t 0 ]] || die "refusing to delete $TPU_NAME without --yes (no terminal to confirm on)"
  read -r -p "Delete queued resource $TPU_NAME and its TPU VMs, with everything on their disks? [y/N] " answer
  [[ "$answer" =~ ^[Yy]([Ee][Ss])?$ ]] || die "not deleted"
fi
scope_flags
note "delete queued resource $TPU_NAME and its TPU VMs"
run gcloud compute tpus queued-resources delete "$TPU_NAME" --force --quiet "${SCOPE[@]}"
