"""The distributed entry point: when it initializes, with what, its errors, and a real two-process
`genie train` run joined through JAX_* environment variables."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest

from genie_jax import cli as genie_cli
from genie_jax.train import distributed
from genie_jax.train.distributed import (
    PEER_LOST_EXIT,
    DistributedConfigError,
    initialize_distributed,
    plan_distributed,
)
from tests.conftest import xla_flags
from tests.train.conftest import CONFIG, TINY_TOKENIZER
from wam_jax import cli as wam_cli

pytestmark = pytest.mark.long_running(seconds=60)  # see tests/conftest.py

JAX_ENV = {
    "JAX_COORDINATOR_ADDRESS": "10.0.0.2:8476",
    "JAX_NUM_PROCESSES": "2",
    "JAX_PROCESS_ID": "1",
}
DETECTED_ENVS = {
    "tpu_pod": {"TPU_WORKER_HOSTNAMES": "t1v-w-0,t1v-w-1,t1v-w-2,t1v-w-3", "TPU_WORKER_ID": "2"},
    "multislice": {"MEGASCALE_NUM_SLICES": "2"},
    "slurm": {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_JOB_ID": "77"},
}
SINGLE_HOST_ENVS = {
    "empty": {},
    "one_tpu_worker": {"TPU_WORKER_HOSTNAMES": "t1v-w-0", "TPU_WORKER_ID": "0"},
    "one_slurm_task": {"SLURM_NTASKS": "1", "SLURM_PROCID": "0"},
    "jax_one_process": {**JAX_ENV, "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"},
}


@pytest.fixture(autouse=True)
def no_tpu_metadata(monkeypatch):
    """No test asks a metadata server; the TPU VM probe says "not a TPU VM" unless a test says
    otherwise."""
    monkeypatch.setattr(distributed, "tpu_vm_worker_count", lambda: None)


@pytest.fixture
def init_calls(monkeypatch):
    """Records `jax.distributed.initialize` calls instead of making them."""
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    return calls


@pytest.mark.parametrize("name", sorted(SINGLE_HOST_ENVS))
def test_single_host_is_never_initialized(name, init_calls, capsys):
    info = initialize_distributed("auto", environ=SINGLE_HOST_ENVS[name])
    assert init_calls == []
    assert not info.initialized and info.process_count == 1
    assert info.device_count == jax.device_count()
    line = capsys.readouterr().out.strip()
    assert line.startswith("distributed: process 0 of 1,") and "single process" in line


def test_jax_env_vars_initialize_with_those_arguments(init_calls, capsys):
    info = initialize_distributed("auto", environ=JAX_ENV)
    expected = {"coordinator_address": "10.0.0.2:8476", "num_processes": 2, "process_id": 1}
    assert init_calls == [{**expected, "heartbeat_timeout_seconds": 100}]
    assert info.initialized and "JAX_COORDINATOR_ADDRESS" in info.reason
    assert jax.config.jax_cpu_collectives_implementation == "gloo"
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


@pytest.mark.parametrize("name", sorted(DETECTED_ENVS))
def test_detected_clusters_let_jax_fill_in_the_arguments(name, init_calls):
    info = initialize_distributed("auto", environ=DETECTED_ENVS[name], log=False)
    # jax's own cluster detection supplies address, count and id
    assert init_calls == [{"heartbeat_timeout_seconds": 100}]
    assert "auto:" in info.reason


def test_tpu_vm_metadata_with_several_workers_initializes(monkeypatch, init_calls):
    monkeypatch.setattr(distributed, "tpu_vm_worker_count", lambda: 4)
    plan = plan_distributed("auto", environ={})
    assert plan.initialize and plan.kwargs == {} and "4 workers" in plan.reason
    monkeypatch.setattr(distributed, "tpu_vm_worker_count", lambda: 1)
    assert not plan_distributed("auto", environ={}).initialize


def test_on_always_initializes_and_off_never(init_calls):
    assert plan_distributed("on", environ={}) == distributed.Plan(
        True, {}, "initialized by jax's cluster detection (--distributed on)"
    )
    one = {**JAX_ENV, "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}
    assert plan_distributed("on", environ=one).kwargs["num_processes"] == 1
    for env in (JAX_ENV, *DETECTED_ENVS.values()):
        assert not plan_distributed("off", environ=env).initialize
    initialize_distributed("off", environ=JAX_ENV, log=False)
    assert init_calls == []


def test_flags_override_env_vars_field_by_field():
    plan = plan_distributed("auto", coordinator="h:1", process_id=0, environ=JAX_ENV)
    assert plan.kwargs == {"coordinator_address": "h:1", "num_processes": 2, "process_id": 0}
    assert "--coordinator" in plan.reason and "JAX_NUM_PROCESSES" in plan.reason


@pytest.mark.parametrize(
    "mode, flags, env, message",
    [
        ("auto", {"num_processes": 2}, {}, "--num-processes given without --coordinator"),
        ("on", {"coordinator": "h:1"}, {}, "without --num-processes"),
        ("auto", {}, {"JAX_NUM_PROCESSES": "2"}, "JAX_NUM_PROCESSES given without"),
        ("auto", {"coordinator": "h:1", "num_processes": 2, "process_id": 2}, {}, "outside 0..1"),
        ("auto", {"coordinator": "h:1", "num_processes": 2, "process_id": -1}, {}, "outside"),
        ("auto", {"coordinator": "h:1", "num_processes": 0, "process_id": 0}, {}, "at least 1"),
        ("auto", {}, {**JAX_ENV, "JAX_NUM_PROCESSES": "two"}, "must be an integer, got 'two'"),
        ("auto", {"coordinator": "h", "num_processes": 2, "process_id": 0}, {}, "HOST:PORT"),
        ("off", {"num_processes": 2}, {}, "--num-processes given with --distributed off"),
        ("off", {"process_id": 0}, {}, "--process-id given with --distributed off"),
        ("sometimes", {}, {}, "auto, on, off"),
    ],
)
def test_bad_settings_give_one_line_errors(mode, flags, env, message, init_calls):
    with pytest.raises(DistributedConfigError, match=message) as error:
        initialize_distributed(mode, environ=env, **flags)
    assert "\n" not in str(error.value)
    assert init_calls == []


def test_cli_options_parse_before_or_after_the_command():
    parser = genie_cli.build_parser()
    before, _ = parser.parse_known_args(["--distributed", "on", "train", "tokenizer"])
    after, rest = parser.parse_known_args(
        ["train", "tokenizer", "--config", "c.py", "--distributed", "on", "--process-id", "1"]
    )
    assert before.distributed == after.distributed == "on"
    assert after.process_id == 1 and after.num_processes is None
    assert rest == ["--config", "c.py"]  # the config flags still reach the config parser
    assert parser.parse_known_args(["eval", "--workdir", "W"])[0].distributed == "auto"
    assert wam_cli.build_parser().parse_args(["eval", "--workdir", "W", "--distributed", "off"])


def test_cli_reports_bad_settings_in_one_line(monkeypatch, capsys, init_calls):
    for name in JAX_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match=r"^genie train: error: --num-processes given without"):
        genie_cli.main(["train", "tokenizer", "--num-processes", "2", "--config", "c.py"])
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "5")
    assert wam_cli.main(["eval", "--workdir", "W"]) == 2
    assert capsys.readouterr().err.strip() == (
        "wam eval: error: JAX_PROCESS_ID 5 is outside 0..1 for 2 processes"
    )
    assert init_calls == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_two_processes_train_checkpoint_and_a_lost_peer_ends_the_run(coinrun_dir, tmp_path, signum):
    """`genie train tokenizer` twice, joined by JAX_* variables (2 processes x 2 CPU devices):
    both train and write a checkpoint together; then process 1 is killed (or stopped: a hung
    host) and process 0 exits with a one-line error instead of waiting for it forever."""
    workdir = tmp_path / "run"
    overrides = {**TINY_TOKENIZER, "tokenizer.num_steps": 100_000, "checkpoint_every": 2}
    argv = [sys.executable, "-m", "genie_jax.cli", "train", "tokenizer"]
    argv += ["--config", f"{CONFIG}:smoke", "--workdir", str(workdir), "--heartbeat-timeout", "10"]
    argv += ["--config.data_dir", coinrun_dir, "--config.eval_every=100000"]
    argv += [f"--config.{key}={value}" for key, value in overrides.items() if key != "eval_every"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = xla_flags(2)
    env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2")
    root = pathlib.Path(__file__).resolve().parents[2]
    logs = [tmp_path / f"process_{i}.log" for i in range(2)]
    workers = [
        subprocess.Popen(
            argv,
            env={**env, "JAX_PROCESS_ID": str(i)},
            cwd=root,
            stdout=logs[i].open("w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 240
        while not (workdir / "checkpoints" / "4").is_dir():  # step 2 is final by then
            alive = all(w.poll() is None for w in workers)
            assert alive and time.monotonic() < deadline, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        workers[1].send_signal(signum)
        killed = time.monotonic()
        workers[0].wait(timeout=300)
        waited = time.monotonic() - killed
    finally:
        for worker in workers:
            worker.kill()
    for i, log in enumerate(logs):
        assert f"distributed: process {i} of 2, 4 devices (2 local)" in log.read_text()
    assert (workdir / "checkpoints" / "2" / "commit_success.txt").is_file()  # written by both
    assert (workdir / "config.json").is_file()
    survivor = _survivor_log(logs[0])
    assert waited < 300, waited
    # Two paths end the survivor: a collective that reports the lost connection to Python
    # (exit status 3), or jax's coordination service after the heartbeat timeout (SIGABRT; the
    # only path for a hung peer). Both give one readable line, no traceback, no C++ abort log.
    endings = [PEER_LOST_EXIT, -signal.SIGABRT]
    assert workers[0].returncode in endings[signum == signal.SIGSTOP :], survivor[-3000:]
    errors = [line for line in survivor.splitlines() if line.startswith("genie train: error:")]
    assert len(errors) == 1, survivor[-3000:]
    assert errors[0].startswith("genie train: error: process 0 of 2 lost a peer (")
    assert "Traceback" not in survivor and "Check failure" not in survivor, survivor[-3000:]


def _survivor_log(log: pathlib.Path) -> str:
    """The log once its error line is in: after an abort the stderr helper writes it last."""
    deadline = time.monotonic() + 10
    while "error:" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return log.read_text()


def test_only_a_collective_that_lost_its_peer_counts_as_a_lost_peer(monkeypatch):
    lost = jax.errors.JaxRuntimeError(
        "UNKNOWN: Gloo AllGather failed: [pair.cc:538] Read error: Connection reset by peer\nmore"
    )
    oom = jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 bytes")
    assert distributed.peer_lost_message(lost) is None  # one process: an ordinary error
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    line = distributed.peer_lost_message(lost)
    assert line.startswith("process 0 of 2 lost a peer (UNKNOWN: Gloo AllGather failed:")
    assert "\n" not in line and "more" not in line
    assert distributed.peer_lost_message(oom) is None
    assert distributed.peer_lost_message(ValueError("Connection reset by peer")) is None
