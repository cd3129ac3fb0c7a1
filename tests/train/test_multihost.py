"""Multi-host for real: two local processes joined by jax.distributed (gloo CPU collectives)
train the tokenizer and the dynamics model and match one process on 8 devices."""

import contextlib
import json
import pathlib
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.long_running(seconds=55)  # see tests/conftest.py

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    import os

    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # the worker sets its own device count
    return env


def test_two_processes_match_one(tmp_path):
    port = _free_port()
    outs = [tmp_path / "p0.json", tmp_path / "p1.json"]
    reference_out = tmp_path / "single.json"
    # The one-process reference runs alongside the pair: each process spends its first
    # seconds importing, which overlaps.
    commands = [[str(i), str(port), str(outs[i])] for i in range(2)]
    commands.append(["-1", "0", str(reference_out)])
    logs = [tmp_path / f"worker{i}.log" for i in range(len(commands))]
    # Logs go to files: a pipe read by one `communicate` at a time could fill and block a
    # process that the others then wait for in a collective.
    with contextlib.ExitStack() as stack:
        workers = []
        for arguments, log in zip(commands, logs, strict=True):
            process = subprocess.Popen(
                [sys.executable, str(WORKER), *arguments],
                env=_env(),
                stdout=stack.enter_context(log.open("w")),
                stderr=subprocess.STDOUT,
            )
            stack.callback(process.kill)  # a failed peer leaves the other waiting
            workers.append(process)
        for worker, log in zip(workers, logs, strict=True):
            worker.wait(timeout=360)
            assert worker.returncode == 0, log.read_text()[-3000:]
    multi, reference = json.loads(outs[0].read_text()), json.loads(reference_out.read_text())
    assert multi["processes"] == 2 and reference["processes"] == 1
    for model in ("tokenizer", "dynamics"):
        losses, expected = multi[model]["losses"], reference[model]["losses"]
        assert abs(losses[0] - expected[0]) < 1e-5, (model, losses, expected)
        assert abs(losses[1] - expected[1]) < 1e-5, (model, losses, expected)
        assert losses[1] != losses[0], model  # the step changed the parameters
        checksum, expected_checksum = multi[model]["checksum"], reference[model]["checksum"]
        assert abs(checksum - expected_checksum) < 1e-3 * abs(expected_checksum), model
