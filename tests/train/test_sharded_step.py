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
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state
from genie_jax.train.steps import jit_train_step, tokenizer_train_step

CONFIG = TokenizerConfig(
    frame_size=16,
    patch_size=4,
    max_frames=4,
    encoder_layers=2,
    encoder_dim=32,
    encoder_heads=4,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=4,
    codebook_size=32,
    latent_dim=8,
)


def _run(mesh_shape, video, steps=2):
    devices = jax.devices()[: int(np.prod(mesh_shape))]
    mesh = make_mesh(mesh_shape, devices)
    tx = optax.sgd(1.0)
    example = (jnp.zeros((1, 4, 16, 16, 3)),)
    state, shardings = create_train_state(
        Tokenizer(CONFIG), tx, example, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
    )
    step = jit_train_step(
        functools.partial(tokenizer_train_step, dead_code_threshold=1),
        mesh,
        shardings,
        LOGICAL_AXIS_RULES,
    )
    losses = []
    for _ in range(steps):
        batch = {"video": jax.device_put(video, batch_sharding(mesh))}
        state, metrics = step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    return losses, state


@pytest.fixture(scope="module")
def video():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, 4, 16, 16, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reference(video):
    losses, state = _run((1, 1, 1), video)
    return losses, jax.device_get(state.params)


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (4, 2, 1), (2, 2, 2)])
def test_step_matches_single_device(mesh_shape, video, reference):
    ref_losses, ref_params = reference
    losses, state = _run(mesh_shape, video)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    params = jax.device_get(state.params)
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), ref_params, params)
    assert max(jax.tree.leaves(moved)) < 1e-5, moved
    # The parameters really moved, so the comparison above is not between two inits.
    _, init_state = _run(mesh_shape, video, steps=0)
    init = jax.device_get(init_state.params)
    change = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), init, params)
    assert max(jax.tree.leaves(change)) > 1e-4


def test_parameters_are_sharded_by_the_rules_table(video):
    _, state = _run((2, 2, 2), video, steps=1)
    mlp_up = state.params["encoder"]["block_0"]["mlp"]["up"]["kernel"]
    assert mlp_up.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert len(mlp_up.addressable_shards) == 8
    assert mlp_up.addressable_shards[0].data.shape == (16, 64)  # 32/fsdp 2, 128/tensor 2


def test_mesh_shape_resolution():
    assert resolve_mesh_shape((-1, 2, 1), 8) == (4, 2, 1)
    assert resolve_mesh_shape((2, 2, 2), 8) == (2, 2, 2)
    with pytest.raises(ValueError, match="does not divide"):
        resolve_mesh_shape((-1, 3, 1), 8)
    with pytest.raises(ValueError, match="at most one -1"):
        resolve_mesh_shape((-1, -1, 1), 8)
    with pytest.raises(ValueError, match="but 8 are present"):
        resolve_mesh_shape((2, 2, 1), 8)
