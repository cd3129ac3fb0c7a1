"""Sharded == unsharded: train steps on 1 device and on 8-device meshes agree.

Plain SGD with learning rate 1 makes the parameter change equal to the gradient, so the 1e-5
parameter tolerance is a tolerance on the sharded gradients. (Adam's first step divides each
gradient by its own magnitude, which turns float-reassociation noise in near-zero gradients
into 1e-5-sized differences that say nothing about the sharding.)"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.mesh import make_mesh, resolve_mesh_shape
from genie_jax.train.sharding import LOGICAL_AXIS_RULES
from genie_jax.train.state import create_train_state
from genie_jax.train.steps import tokenizer_train_step
from tests.sharded_run import max_abs_diff, run_steps

CONFIG = TokenizerConfig(
    frame_size=16,
    patch_size=4,
    max_frames=4,
    encoder_layers=1,
    encoder_dim=32,
    encoder_heads=4,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=4,
    codebook_size=32,
    latent_dim=8,
)


VIDEO = np.random.default_rng(0).integers(0, 256, (8, 4, 16, 16, 3), dtype=np.uint8)
EXAMPLE = (jnp.zeros((1, 4, 16, 16, 3)),)
STEP = functools.partial(tokenizer_train_step, dead_code_threshold=1)


def _run(mesh_shape, start=None):
    return run_steps(
        Tokenizer(CONFIG), optax.sgd(1.0), EXAMPLE, STEP, mesh_shape, {"video": VIDEO}, start=start
    )


@functools.cache
def _reference():
    return _run((1, 1, 1))


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (4, 2, 1), (2, 2, 2)])
def test_step_matches_single_device(mesh_shape):
    ref_losses, ref_start, ref_params = _reference()
    losses, _, params = _run(mesh_shape, start=ref_start)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    assert max_abs_diff(ref_params, params) < 1e-5
    # The parameters really moved, so the comparison above is not between two inits.
    assert max_abs_diff(ref_start.params, params) > 1e-4


def test_parameters_are_initialized_in_place_by_the_rules_table():
    """`create_train_state` on (2, 2, 2) shards by the rules and equals the 1-device init."""
    mesh = make_mesh((2, 2, 2))
    state, _ = create_train_state(
        Tokenizer(CONFIG), optax.sgd(1.0), EXAMPLE, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
    )
    mlp_up = state.params["encoder"]["block_0"]["mlp"]["up"]["kernel"]
    assert mlp_up.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert len(mlp_up.addressable_shards) == 8
    assert mlp_up.addressable_shards[0].data.shape == (16, 64)  # 32/fsdp 2, 128/tensor 2
    assert max_abs_diff(_reference()[1].params, jax.device_get(state.params)) < 1e-6


def test_mesh_shape_resolution():
    assert resolve_mesh_shape((-1, 2, 1), 8) == (4, 2, 1)
    assert resolve_mesh_shape((2, 2, 2), 8) == (2, 2, 2)
    with pytest.raises(ValueError, match="does not divide"):
        resolve_mesh_shape((-1, 3, 1), 8)
    with pytest.raises(ValueError, match="at most one -1"):
        resolve_mesh_shape((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="but 8 are present"):
        resolve_mesh_shape((2, 2, 1), 8)
