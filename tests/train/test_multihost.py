"""Multi-host for real: two local processes joined by jax.distributed (gloo CPU collectives)
train the tokenizer and the dynamics model and match one process on 8 devices."""

import json
import pathlib
import socket
import subprocess
import sys

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
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), str(port), str(outs[i])],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    for worker, log in zip(workers, logs, strict=False):
        assert worker.returncode == 0, log[-3000:]
    reference_out = tmp_path / "single.json"
    single = subprocess.run(
        [sys.executable, str(WORKER), "-1", "0", str(reference_out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    multi, reference = json.loads(outs[0].read_text()), json.loads(reference_out.read_text())
    assert multi["processes"] == 2 and reference["processes"] == 1
    for model in ("tokenizer", "dynamics"):
        losses, expected = multi[model]["losses"], reference[model]["losses"]
        assert abs(losses[0] - expected[0]) < 1e-5, (model, losses, expected)
        assert abs(losses[1] - expected[1]) < 1e-5, (model, losses, expected)
        assert losses[1] != losses[0], model  # the step changed the parameters
        checksum, expected_checksum = multi[model]["checksum"], reference[model]["checksum"]
        assert abs(checksum - expected_checksum) < 1e-3 * abs(expected_checksum), model
