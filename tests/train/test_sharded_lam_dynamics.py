"""Sharded == unsharded for the LAM and dynamics train steps over the mesh matrix (see
tests/sharded_run.py: plain SGD with learning rate 1, so parameter equality is gradient
equality)."""

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genie_jax.dynamics import DynamicsConfig
from genie_jax.genie_model import GenieModel
from genie_jax.lam import LAMConfig, LatentActionModel
from genie_jax.tokenizer import TokenizerConfig
from genie_jax.train.dynamics_steps import dynamics_train_step
from genie_jax.train.state import freeze_groups
from genie_jax.train.steps import lam_train_step
from tests.sharded_run import max_abs_diff, run_steps

pytestmark = pytest.mark.long_running(seconds=100)  # see tests/conftest.py

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
        num_layers=1, dim=32, num_heads=4, max_frames=FRAMES, action_mode=action_mode
    )


def _setup(kind: str):
    video = jnp.zeros((1, FRAMES, SIZE, SIZE, 3))
    if kind == "lam":
        model = LatentActionModel(LAM)
        step = functools.partial(lam_train_step, dead_code_threshold=1)
        return model, optax.sgd(1.0), (video,), step
    frozen = ("tokenizer",)  # the LAM is co-trained
    model = GenieModel(TOKENIZER, LAM, _dynamics_config("prepend"))
    mask = jnp.zeros((1, FRAMES, TOKENIZER.num_tokens), bool)
    step = functools.partial(
        dynamics_train_step,
        num_tokens=TOKENIZER.num_tokens,
        frozen=frozen,
        dead_code_threshold=1,
    )
    return model, freeze_groups(optax.sgd(1.0), frozen), (video, mask), step


def _run(kind: str, mesh_shape, start=None):
    model, tx, example, step_fn = _setup(kind)
    return run_steps(model, tx, example, step_fn, mesh_shape, {"video": VIDEO}, start=start)


VIDEO = np.random.default_rng(0).integers(0, 256, (8, FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
MESHES = [(8, 1, 1), (4, 2, 1), (2, 2, 2)]


@functools.cache
def _reference(kind: str):
    """One device: (losses, initial state, final params), computed once per kind."""
    return _run(kind, (1, 1, 1))


# The LAM, and the dynamics model with the LAM co-trained (CoinRun's `prepend` token layout),
# over the whole mesh matrix. The `add` layout differs in how the action enters the tokens, not
# in the sharding rules (it is tested for alignment and caching); the frozen-LAM dynamics step
# is what the loop-level pipeline tests train on (2, 2, 2).
@pytest.mark.parametrize(
    "kind, mesh_shape",
    [("lam", m) for m in MESHES] + [("dynamics_cotrain", m) for m in MESHES],
)
def test_step_matches_single_device(kind, mesh_shape):
    ref_losses, start, ref_params = _reference(kind)
    losses, _, params = _run(kind, mesh_shape, start=start)
    init_params = start.params
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    assert max_abs_diff(ref_params, params) < 1e-5
    assert max_abs_diff(init_params, params) > 1e-4  # the steps really moved the params
    if kind.startswith("dynamics"):
        _check_frozen_groups(init_params, params)


def _check_frozen_groups(init_params, params) -> None:
    """The tokenizer stays exactly as loaded; the co-trained LAM and the dynamics model move."""
    assert max_abs_diff(init_params["tokenizer"], params["tokenizer"]) == 0.0
    assert max_abs_diff(init_params["lam"], params["lam"]) > 1e-4
    assert max_abs_diff(init_params["dynamics"], params["dynamics"]) > 1e-4
