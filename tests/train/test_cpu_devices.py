"""`--cpu-devices`: parsed, applied before JAX starts, refused in one line after."""

import argparse
import os
import subprocess
import sys

import pytest

from genie_jax.cli import main as genie_main
from genie_jax.train.cpu_devices import parse_cpu_devices, usable_cores


def test_values():
    assert parse_cpu_devices("auto") == usable_cores() >= 1
    assert parse_cpu_devices("3") == 3
    for bad in ("0", "-2", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer or auto"):
            parse_cpu_devices(bad)


def test_a_new_process_gets_the_devices_asked_for():
    """Over XLA_FLAGS' count, as the option is the later, explicit choice."""
    code = (
        "import argparse, jax;"
        "from genie_jax.train.distributed import add_cli_options, initialize_from_args;"
        "p = argparse.ArgumentParser(); add_cli_options(p);"
        "initialize_from_args(p.parse_args(['--cpu-devices', '3']));"
        "print(jax.device_count(), jax.devices()[0].platform)"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=5"}
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["3", "cpu"]


def test_after_jax_started_it_is_a_one_line_error():
    import jax

    assert jax.device_count() == 8  # JAX has started, on the suite's 8 simulated devices
    argv = ["bench", "train", "--config", "experiments/configs/coinrun.py:tiny"]
    with pytest.raises(SystemExit, match="JAX has already started") as error:
        genie_main([*argv, "--model", "tokenizer", "--cpu-devices", "2"])
    assert "\n" not in str(error.value.code)
