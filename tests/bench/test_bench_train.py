"""`genie bench train` / `wam bench train`: the JSON line, its figures, the mesh, bad input.

Tiny models on a (2, 2, 2) mesh of the 8 simulated devices; never a timing threshold.
"""

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from genie_jax.bench.train import genie_bench_model, step_flops
from genie_jax.cli import main as genie_main
from genie_jax.config_loading import load_config
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import rules_from_config
from genie_jax.train.state import make_optimizer
from wam_jax.cli import main as wam_main

pytestmark = pytest.mark.long_running(seconds=50)  # see tests/conftest.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
COINRUN = str(ROOT / "experiments/configs/coinrun.py")
BABYAI = str(ROOT / "experiments/configs/babyai.py")

_VIDEO = dict(
    patch_size=16,
    encoder_layers=1,
    encoder_dim=16,
    encoder_heads=2,
    decoder_layers=1,
    decoder_dim=16,
    decoder_heads=2,
)
TINY_GENIE = {
    "clip_len": 8,
    "mesh_shape": "(2,2,2)",
    **{f"tokenizer.model.{k}": v for k, v in _VIDEO.items()},
    "tokenizer.model.codebook_size": 64,
    "tokenizer.model.latent_dim": 8,
    **{f"lam.model.{k}": v for k, v in _VIDEO.items()},
    "dynamics.model.num_layers": 1,
    "dynamics.model.dim": 16,
    "dynamics.model.num_heads": 2,
}
TINY_WAM = {
    "mesh_shape": "(2,2,2)",
    **{f"tokenizer.model.{k}": v for k, v in {**_VIDEO, "patch_size": 16}.items()},
    "wam.model.num_layers": 1,
    "wam.model.dim": 16,
    "wam.model.num_heads": 2,
    "wam.model.ahead_head": True,  # the synthetic batch carries every auxiliary label
}
FAST = ["--steps", "2", "--warmup", "1", "--batch-size", "4", "--matmul-size", "128"]
REQUIRED = (
    "step_time_s",
    "tokens_per_s",
    "peak_memory_bytes",
    "measured_peak_flops",
    "model_flops_per_step",
    "mfu",
)


@pytest.fixture(autouse=True)
def _fast_prng():
    """The "rbg" generator compiles several times faster than threefry on CPU."""
    with jax.default_prng_impl("rbg"):
        yield


def _overrides(values: dict) -> list[str]:
    return [f"--config.{key}={value}" for key, value in values.items()]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _check(result: dict, model: str) -> None:
    for key in (*REQUIRED, "device", "num_devices", "dtype", "batch_size", "config"):
        assert key in result, key
    for key in REQUIRED:
        assert math.isfinite(result[key]) and result[key] > 0, (key, result[key])
    expected_mfu = (
        result["model_flops_per_step"] / result["step_time_s"] / result["measured_peak_flops"]
    )
    assert result["mfu"] == pytest.approx(expected_mfu, rel=1e-12)
    assert result["model"] == model
    assert result["data"] == "synthetic"
    assert result["peak_memory_source"] == "process peak RSS"  # CPU: no device memory stats
    # The step ran on the configured mesh of all 8 simulated devices.
    assert result["num_devices"] == 8
    assert result["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
    assert result["model_flops_per_step"] == 8 * result["model_flops_per_step_per_device"]
    assert result["batch_size"] == 4 and result["dtype"] == "float32"
    assert math.isfinite(result["loss"])


def test_dynamics_step_and_input_pipeline(coinrun_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "train", "--config", f"{COINRUN}:smoke", "--model", "dynamics", *FAST]
    argv += ["--out", str(out), *_overrides(TINY_GENIE), "--config.data_dir", coinrun_dir]
    genie_main(argv)
    result = _last_json(capsys)
    _check(result, "dynamics")
    assert json.loads(out.read_text()) == result
    assert result["config"] == f"{COINRUN}:smoke"
    assert "no pretrained load" in result["notes"][0]
    # 4 clips x 8 frames x 16 tokens (the tokenizer's patch 16 on 64x64 frames) per step.
    assert result["tokens_per_s"] == pytest.approx(4 * 8 * 16 / result["step_time_s"])
    assert math.isfinite(result["input_wait_s"]) and result["input_wait_s"] >= 0
    assert result["input_steps"] == 2


def test_wam_step(capsys):
    argv = ["bench", "train", "--config", f"{BABYAI}:smoke", *FAST, *_overrides(TINY_WAM)]
    assert wam_main(argv) == 0
    _check(_last_json(capsys), "wam")


@pytest.mark.parametrize(
    "model, message",
    [("nonsense", "unknown --model 'nonsense'"), ("wam", "wam bench train"), (None, "required")],
)
def test_bad_model_is_a_one_line_error(model, message):
    argv = ["bench", "train", "--config", f"{COINRUN}:smoke"]
    argv += [] if model is None else ["--model", model]
    with pytest.raises(SystemExit, match=message) as error:
        genie_main(argv)
    assert "\n" not in str(error.value.code)


def test_flops_count_every_layer_of_a_scanned_stack():
    """XLA counts a loop body once; the bench counts an unrolled trace, so scanning the layers
    (a compile-time choice) leaves the model FLOPs unchanged, and a second layer adds some.
    (`step_flops` is what `bench train` reports as `model_flops_per_step`.)"""
    deeper = {
        **TINY_GENIE,
        "tokenizer.model.encoder_layers": 2,
        "tokenizer.model.decoder_layers": 2,
    }
    flops = {}
    for name, values in {
        "unrolled": deeper,
        "scanned": {**deeper, "tokenizer.model.scan_layers": True},
        "shallow": TINY_GENIE,
    }.items():
        config = load_config(f"{COINRUN}:smoke", values)
        bench = genie_bench_model(config, "tokenizer")
        mesh = make_mesh((1, 1, 1), jax.devices()[:1])  # step_flops lowers on one device
        tx = make_optimizer(total_steps=10, **config.tokenizer.optimizer.to_dict())
        batch = bench.make_batch(4, np.random.default_rng(0))
        rules = rules_from_config(config.get("logical_axis_rules"))
        flops[name] = step_flops(bench.task, tx, mesh, rules, batch, jax.random.key(0))
    assert flops["scanned"] == flops["unrolled"]
    assert flops["shallow"] < 0.9 * flops["unrolled"]


def test_out_of_memory_is_one_line_that_says_what_to_change():
    from genie_jax.bench.train import out_of_memory_as_config_error
    from genie_jax.config_loading import ConfigError

    oom = jax.errors.JaxRuntimeError(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 151.78GiB\nmore detail"
    )
    with (
        pytest.raises(ConfigError, match="batch 36 does not fit") as error,
        out_of_memory_as_config_error(36),
    ):
        raise oom
    assert "\n" not in str(error.value) and "--batch-size" in str(error.value)
    assert "151.78GiB" in str(error.value)
    other = jax.errors.JaxRuntimeError("INTERNAL: something else")
    with (
        pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"),
        out_of_memory_as_config_error(36),
    ):
        raise other
