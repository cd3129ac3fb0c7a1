"""Sharded == unsharded for the LAM and dynamics train steps (see test_sharded_step.py for why
plain SGD with learning rate 1: parameter equality is then gradient equality)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genie_jax.dynamics import DynamicsConfig
from genie_jax.genie_model import GenieModel
from genie_jax.lam import LAMConfig, LatentActionModel
from genie_jax.tokenizer import TokenizerConfig
from genie_jax.train.dynamics_steps import dynamics_train_step
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state, freeze_groups
from genie_jax.train.steps import jit_train_step, lam_train_step

FRAMES, SIZE = 4, 16
TOKENIZER = TokenizerConfig(
    frame_size=SIZE,
    patch_size=4,
    max_frames=FRAMES,
    encoder_layers=1,
    encoder_dim=32,
    encoder_heads=4,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=4,
    codebook_size=32,
    latent_dim=8,
)
LAM = LAMConfig(
    frame_size=SIZE,
    patch_size=8,
    max_frames=FRAMES,
    encoder_layers=1,
    encoder_dim=32,
    encoder_heads=4,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=4,
    num_actions=4,
    latent_dim=8,
)


def _dynamics_config(action_mode: str) -> DynamicsConfig:
    return DynamicsConfig(
        num_layers=2, dim=32, num_heads=4, max_frames=FRAMES, action_mode=action_mode
    )


def _setup(kind: str):
    video = jnp.zeros((1, FRAMES, SIZE, SIZE, 3))
    if kind == "lam":
        model = LatentActionModel(LAM)
        step = functools.partial(lam_train_step, dead_code_threshold=1)
        return model, optax.sgd(1.0), (video,), step
    frozen = ("tokenizer",) if kind == "dynamics_cotrain" else ("tokenizer", "lam")
    mode = "add" if kind == "dynamics_add" else "prepend"
    model = GenieModel(TOKENIZER, LAM, _dynamics_config(mode))
    mask = jnp.zeros((1, FRAMES, TOKENIZER.num_tokens), bool)
    step = functools.partial(
        dynamics_train_step,
        num_tokens=TOKENIZER.num_tokens,
        frozen=frozen,
        dead_code_threshold=1,
    )
    return model, freeze_groups(optax.sgd(1.0), frozen), (video, mask), step


def _run(kind: str, mesh_shape, video, steps=2):
    mesh = make_mesh(mesh_shape, jax.devices()[: int(np.prod(mesh_shape))])
    model, tx, example, step_fn = _setup(kind)
    state, shardings = create_train_state(
        model, tx, example, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
    )
    step = jit_train_step(step_fn, mesh, shardings, LOGICAL_AXIS_RULES)
    losses = []
    for _ in range(steps):
        batch = {"video": jax.device_put(video, batch_sharding(mesh))}
        state, metrics = step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    return losses, jax.device_get(state.params)


@pytest.fixture(scope="module")
def video():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, FRAMES, SIZE, SIZE, 3), dtype=np.uint8)


def _max_abs_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


@pytest.mark.parametrize("kind", ["lam", "dynamics_add", "dynamics_prepend", "dynamics_cotrain"])
def test_step_matches_single_device(kind, video):
    ref_losses, ref_params = _run(kind, (1, 1, 1), video)
    losses, params = _run(kind, (2, 2, 2), video)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    assert _max_abs_diff(ref_params, params) < 1e-5
    _, init_params = _run(kind, (2, 2, 2), video, steps=0)
    assert _max_abs_diff(init_params, params) > 1e-4  # the steps really moved the params
    if kind.startswith("dynamics"):
        _check_frozen_groups(kind, init_params, params)


def _check_frozen_groups(kind: str, init_params, params) -> None:
    """The tokenizer (and the LAM unless co-trained) must stay exactly as loaded."""
    assert _max_abs_diff(init_params["tokenizer"], params["tokenizer"]) == 0.0
    lam_change = _max_abs_diff(init_params["lam"], params["lam"])
    if kind == "dynamics_cotrain":
        assert lam_change > 1e-4
    else:
        assert lam_change == 0.0
    assert _max_abs_diff(init_params["dynamics"], params["dynamics"]) > 1e-4
