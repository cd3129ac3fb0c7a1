#!/usr/bin/env bash
# Puts a dataset directory on every worker: copied from here, synced from GCS, or a GCS mount.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: data.sh --name NAME --src (DIR | gs://BUCKET/PATH) [--dest DIR] [--mount [--writable]]
               [--zone Z] [--project P] [--dry-run]

Every worker reads its own shard of the data from a local path, so the same dataset must be
at the same path on all of them. Three ways, printed first as a `# data:` line:

  --src DIR              copy a local data directory to every worker (a tarball made
                         here, gcloud compute tpus tpu-vm scp --worker=all, unpacked)
  --src gs://B/PATH      sync it from Cloud Storage on every worker
                         (gcloud storage rsync --recursive; the workers' service account
                         needs read access)
  --src gs://B/PATH --mount
                         mount the bucket read-only with gcsfuse at DEST instead of copying
                         (gcsfuse must be installed on the workers' image); with
                         --writable it is mounted read-write, e.g. as a run directory that
                         every worker sees (multi-host checkpoints need one)

  --dest DIR   where the data lands, under the remote home (default
               genie-jax/runs/data/<last part of SRC>: inside the project directory, where
               launch.sh runs commands, so --config.data_dir=runs/data/<...> finds it)
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run    print the commands, run nothing
EOF
}

SRC=""
DEST=""
MOUNT=0
WRITABLE=0
while (($#)); do
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --src) need_value "$@"; SRC="$2"; shift 2 ;;
    --dest) need_value "$@"; DEST="$2"; shift 2 ;;
    --mount) MOUNT=1; shift ;;
    --writable) WRITABLE=1; shift ;;
    *) common_option "$@" || die "unknown option $1 (see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
((MOUNT || !WRITABLE)) || die "--writable goes with --mount"
[[ -n "$SRC" ]] || die "missing --src (a local data directory or gs://BUCKET/PATH)"
SRC="${SRC%/}"
DEST="${DEST:-$REMOTE_DIR/runs/data/$(basename -- "$SRC")}"
[[ "$DEST" =~ ^[A-Za-z0-9_.][A-Za-z0-9_./-]*$ ]] ||
  die "--dest '$DEST' must be a plain path under the remote home"
remote="\$HOME/$DEST"

if [[ "$SRC" == gs://* ]]; then
  [[ "$SRC" =~ ^gs://[a-z0-9][-a-z0-9_.]*[a-z0-9](/.*)?$ ]] || die "--src '$SRC' is not a gs://BUCKET/PATH"
  if ((MOUNT)); then
    bucket="${SRC#gs://}"
    prefix=""
    if [[ "$bucket" == */* ]]; then prefix="${bucket#*/}"; fi
    bucket="${bucket%%/*}"
    only_dir=""
    if [[ -n "$prefix" ]]; then only_dir="--only-dir $(shell_line "$prefix") "; fi
    access="read-only"
    options="-o ro "
    if ((WRITABLE)); then access="read-write"; options=""; fi
    note "data: mount $SRC $access at ~/$DEST on every worker (gcsfuse)"
    ssh_workers all "set -e; mkdir -p $remote; mountpoint -q $remote || gcsfuse $options--implicit-dirs $only_dir$bucket $remote"
  else
    note "data: sync $SRC to ~/$DEST on every worker (gcloud storage rsync)"
    ssh_workers all "set -e; mkdir -p $remote; gcloud storage rsync --recursive $(shell_line "$SRC") $remote"
  fi
else
  ((!MOUNT && !WRITABLE)) || die "--mount and --writable need a gs:// source"
  [[ -d "$SRC" ]] || die "--src '$SRC' is neither a directory here nor a gs:// path"
  tarball="${TMPDIR:-/tmp}/genie-jax-data-$TPU_NAME.tar.gz"
  note "data: copy local $SRC to ~/$DEST on every worker (tarball + scp)"
  run tar -czf "$tarball" -C "$SRC" .
  scope_flags
  run gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:genie-jax-data.tar.gz" --worker=all \
    "${SCOPE[@]}"
  ssh_workers all "set -e; mkdir -p $remote; tar -xzf \$HOME/genie-jax-data.tar.gz -C $remote; rm \$HOME/genie-jax-data.tar.gz"
fi
if [[ "$DEST" == "$REMOTE_DIR"/* ]]; then
  note "then, in launch.sh's command: --config.data_dir=${DEST#"$REMOTE_DIR"/}"
else
  note "then, in launch.sh's command: --config.data_dir=/ABSOLUTE/HOME/$DEST (the same on every worker)"
fi
