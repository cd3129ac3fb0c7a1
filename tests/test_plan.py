"""`genie plan`: exact state bytes, the analytic model against autodiff and XLA, the command."""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import pytest
from jax._src.ad_checkpoint import saved_residuals

from genie_jax.cli import main
from genie_jax.config_loading import load_config
from genie_jax.nn import STTransformer
from genie_jax.plan import add_xla, make_plan
from genie_jax.plan.report import planning_task
from genie_jax.plan.st_stack import StackShape, layer_residual_bytes
from genie_jax.plan.state_bytes import state_bytes, task_optimizer
from genie_jax.plan.xla_check import compiled_costs
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES
from genie_jax.train.state import create_train_state

CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "experiments/configs/coinrun.py")
# One-layer frozen encoders: they only run forward in a dynamics step, and compile faster.
SHALLOW_FROZEN = {"tokenizer.model.encoder_layers": 1, "lam.model.encoder_layers": 1}
PAPER_MESH = ["--mesh", "data=16,fsdp=16,tensor=1", "--device", "v5p"]


def _per_device_bytes(tree) -> dict:
    """Device -> bytes of the shards it holds."""
    held = {}
    for leaf in jax.tree.leaves(tree):
        for shard in leaf.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    return held


def test_state_bytes_equal_the_shards_of_a_real_sharded_state():
    shallow = {**SHALLOW_FROZEN, "tokenizer.model.decoder_layers": 1}
    shallow["dynamics.model.num_layers"] = 1
    config = load_config(f"{CONFIG}:smoke", {"clip_len": 4, **shallow})
    task = planning_task(config, "dynamics")  # frozen groups: no optimizer state for them
    sizes = {"data": 2, "fsdp": 2, "tensor": 2}
    planned = state_bytes(task, sizes, LOGICAL_AXIS_RULES)["per_device"]
    mesh = make_mesh((2, 2, 2))
    state, _ = create_train_state(
        task.model, task_optimizer(task), task.example_inputs, jax.random.key(0, impl="rbg"), mesh,
        LOGICAL_AXIS_RULES,
    )  # fmt: skip
    for kind, key in (("params", "params"), ("opt_state", "optimizer")):
        held = _per_device_bytes(getattr(state, kind))
        assert set(held.values()) == {planned[key]}, kind
    trainable = {g: p for g, p in state.params.items() if g not in task.frozen}
    assert set(_per_device_bytes(trainable).values()) == {planned["gradients"]}


def _autodiff_layer_bytes(dtype, qk_norm: bool, policy: str) -> int:
    """Residual bytes autodiff keeps per block: a 3-layer stack minus a 2-layer one."""
    shape = dict(batch=2, frames=4, tokens=6, dim=16, heads=2, mlp_dim=64)

    def kept(layers: int) -> int:
        stack = STTransformer(
            num_layers=layers,
            num_heads=shape["heads"],
            mlp_dim=shape["mlp_dim"],
            qk_norm=qk_norm,
            dtype=dtype,
            remat_policy=policy,
        )
        x = jax.ShapeDtypeStruct(
            (shape["batch"], shape["frames"], shape["tokens"], shape["dim"]), dtype
        )
        params = jax.eval_shape(stack.init, jax.random.key(0), x)
        loss = lambda p, x: jnp.sum(stack.apply(p, x).astype(jnp.float32))  # noqa: E731
        residuals = saved_residuals(loss, params, x)
        return sum(
            math.prod(a.shape) * a.dtype.itemsize
            for a, why in residuals
            if not why.startswith("from the argument")
        )

    autodiff = kept(3) - kept(2)
    analytic = layer_residual_bytes(
        StackShape(
            layers=1, qk_norm=qk_norm, compute_bytes=jnp.dtype(dtype).itemsize, remat=policy,
            **shape,
        )
    )  # fmt: skip
    return autodiff, analytic


@pytest.mark.parametrize(
    "dtype, qk_norm, policy",
    [
        (jnp.float32, False, "none"),
        (jnp.bfloat16, True, "none"),
        (jnp.bfloat16, True, "full"),
        (jnp.float32, False, "dots_no_batch"),
        (jnp.bfloat16, True, "dots"),
    ],
)
def test_layer_residuals_match_autodiff(dtype, qk_norm, policy):
    autodiff, analytic = _autodiff_layer_bytes(dtype, qk_norm, policy)
    if policy == "none":  # a few per-layer constants (norm scales, literals) are not counted
        assert analytic == pytest.approx(autodiff, rel=0.005)
    else:
        assert analytic == autodiff


@pytest.mark.parametrize(
    "model, overrides, mesh, batch",
    [
        # the paper's setting at toy size: scanned, fully rematerialized, data + tensor parallel
        (
            "tokenizer",
            {"tokenizer.model.remat_policy": "full", "tokenizer.model.scan_layers": True},
            (4, 1, 2),
            8,
        ),
        ("dynamics", SHALLOW_FROZEN, (1, 1, 1), 4),  # no remat: every layer keeps its residuals
    ],
)
def test_analytic_flops_and_memory_within_10_percent_of_xla(model, overrides, mesh, batch):
    config = load_config(f"{CONFIG}:smoke", {"clip_len": 8, **overrides})
    sizes = dict(zip(("data", "fsdp", "tensor"), mesh))
    plan = make_plan(config, model, sizes, "v5p", batch=batch)
    xla = compiled_costs(config, planning_task(config, model), sizes, batch)
    comparison = add_xla(plan, xla)["xla"]["comparison"]
    assert abs(comparison["flops_per_device"]["error"]) < 0.10
    assert abs(comparison["temporaries"]["error"]) < 0.10
    assert abs(comparison["arguments"]["error"]) < 0.05


def _plan_json(capsys, *argv) -> dict:
    main(["plan", "--config", f"{CONFIG}:paper", *argv, "--json"])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_plan_command_prints_the_documented_json(capsys):
    plan = _plan_json(capsys, *PAPER_MESH)
    assert {"params", "optimizer", "gradients", "activations", "total"} <= set(
        plan["bytes_per_device"]
    )
    assert {"global", "per_device"} <= set(plan["flops_per_step"])
    assert {"fits", "headroom_bytes", "note", "hbm_bytes", "mesh", "model"} <= set(plan)
    assert plan["model"] == "dynamics" and plan["devices"] == 256
    assert plan["batch_per_device"] == 2
    assert plan["fits"] == (plan["bytes_per_device"]["total"] <= plan["hbm_bytes"])
    assert plan["flops_per_step"]["global"] > plan["flops_per_step"]["per_device"] > 0


def test_the_ten_billion_dynamics_model_does_not_fit_one_v5p(capsys):
    plan = _plan_json(capsys, "--mesh", "data=1", "--device", "v5p", "--batch-size", "1")
    per_device = plan["bytes_per_device"]
    # fp32 params and two Adam moments of 10B parameters: about 120 GB before activations
    assert per_device["params"] + per_device["optimizer"] > 110e9
    assert not plan["fits"] and "does not fit" in plan["note"]


def test_config_overrides_and_batch_size_reach_the_plan(capsys):
    full = _plan_json(capsys, *PAPER_MESH)
    half = _plan_json(
        capsys, *PAPER_MESH, "--config.dynamics.model.num_layers=12", "--batch-size", "256"
    )
    assert half["trainable_param_count"] < 0.6 * full["trainable_param_count"]
    assert half["batch_per_device"] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mesh", "data=16,fsdp", "--device", "v5p"], "--mesh"),
        (["--mesh", "data=16,pipeline=2", "--device", "v5p"], "--mesh"),
        (["--mesh", "data=16", "--device", "v9z"], "unknown device"),
        (["--mesh", "data=16,fsdp=16,tensor=3", "--device", "v5p"], "cannot split"),
        (["--mesh", "data=3", "--device", "v5p"], "not divisible"),
    ],
)
def test_bad_plans_give_a_one_line_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--config", f"{CONFIG}:paper", *argv])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert message in error and error.startswith("genie plan: error:")
    assert len(error.splitlines()) == 1
