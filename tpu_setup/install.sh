#!/usr/bin/env bash
# Installs uv and the project (at one git ref) on every worker of a TPU VM / slice.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
usage: install.sh --name NAME (--repo URL --ref REF | --copy [--ref REF])
                  [--dir DIR] [--zone Z] [--project P] [--dry-run]

On every worker (gcloud compute tpus tpu-vm ssh --worker=all): installs uv (pip --user) if
missing (else uv's installer), puts the project in ~/DIR at REF, runs
`uv sync --frozen --extra gcs` (gcsfs, for `--workdir gs://bucket/run`), then adds `jax[tpu]`
(libtpu) at the locked jax version with `uv pip install` (pyproject.toml has no TPU extra;
`uv run` keeps the added package because it syncs inexactly).

  --repo URL --ref REF  fetch REF (branch, tag or commit) of URL on each worker
  --copy                pack this checkout's REF (default HEAD) with `git archive` and copy
                        the tarball to every worker (`tpu-vm scp --worker=all`)
  --dir DIR             directory under the remote home (default $REMOTE_DIR or genie-jax)
  --name, --zone, --project  default $TPU_NAME, $ZONE, $PROJECT
  --dry-run             print the commands, run nothing
EOF
}

REPO=""
REF=""
COPY=0
while (($#)); do
  split_equals "$1"
  set -- "${SPLIT[@]}" "${@:2}"
  case "$1" in
    --repo) need_value "$@"; REPO="$2"; shift 2 ;;
    --ref) need_value "$@"; REF="$2"; shift 2 ;;
    --copy) COPY=1; shift ;;
    --dir) need_value "$@"; REMOTE_DIR="$2"; shift 2 ;;
    *) common_option "$@" || die "unknown option $1 (see --help)"; shift "$SHIFT" ;;
  esac
done

require_name
if ((COPY)) && [[ -n "$REPO" ]]; then die "give either --repo URL --ref REF or --copy, not both"; fi
if ((!COPY)) && [[ -z "$REPO" ]]; then die "missing --repo URL --ref REF (or --copy)"; fi
if [[ -n "$REPO" && -z "$REF" ]]; then die "--repo needs --ref (a branch, tag or commit)"; fi
[[ "$REMOTE_DIR" =~ ^[A-Za-z0-9_.][A-Za-z0-9_./-]*$ ]] ||
  die "--dir '$REMOTE_DIR' must be a plain path under the remote home"

dir="\$HOME/$REMOTE_DIR"
# Expanded on the workers, hence the single quotes.
# shellcheck disable=SC2016
uv_on_path='export PATH="$HOME/.local/bin:$PATH"; command -v uv >/dev/null || python3 -m pip install --user --quiet uv || curl -LsSf https://astral.sh/uv/install.sh | sh'

if ((COPY)); then
  REF="${REF:-HEAD}"
  repo_root="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel 2>/dev/null)" ||
    die "--copy packs a git checkout, and $(dirname "${BASH_SOURCE[0]}") is not inside one"
  tarball="${TMPDIR:-/tmp}/genie-jax-$TPU_NAME.tar.gz"
  note "copy: $REF of $repo_root as a tarball to every worker"
  run git -C "$repo_root" archive --format=tar.gz "--output=$tarball" "$REF"
  scope_flags
  run gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:genie-jax.tar.gz" --worker=all \
    "${SCOPE[@]}"
  # Unpacked over an earlier copy (no rm: runs or data kept under DIR survive).
  fetch="mkdir -p $dir && tar -xzf \$HOME/genie-jax.tar.gz -C $dir"
else
  note "clone: $REPO at $REF on every worker"
  # init + fetch instead of clone: works again and again, and in a DIR that data.sh filled.
  url="$(shell_line "$REPO")"
  fetch="mkdir -p $dir && git -C $dir init -q"
  fetch+=" && { git -C $dir remote add origin $url 2>/dev/null || git -C $dir remote set-url origin $url; }"
  fetch+=" && git -C $dir fetch --depth=1 origin $(shell_line "$REF")"
  fetch+=" && git -C $dir checkout --force --detach FETCH_HEAD"
fi
# shellcheck disable=SC2016
jax_tpu='uv pip install "jax[tpu]==$(uv run --no-sync python -c "import jax; print(jax.__version__)")"'
note "then: uv, uv sync --frozen --extra gcs, jax[tpu] at the locked jax version"
ssh_workers all "set -e; $uv_on_path; $fetch; cd $dir && uv sync --frozen --extra gcs && $jax_tpu"
