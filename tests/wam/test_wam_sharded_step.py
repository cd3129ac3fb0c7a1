"""Sharded == unsharded for the WAM train step, with and without the latent-action LAM.

Plain SGD at learning rate 1, as in tests/train/test_sharded_step.py: equal parameters after
two steps then mean equal gradients. The frozen tokenizer and LAM must not move.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state, freeze_groups
from genie_jax.train.steps import jit_train_step
from tests.wam.tiny import FRAMES, TOKENIZER, WORDS, tiny_batch, tiny_system
from wam_jax.steps import wam_train_step


def _run(with_lam: bool, mesh_shape, batch, steps=2):
    mesh = make_mesh(mesh_shape, jax.devices()[: int(np.prod(mesh_shape))])
    system = tiny_system(with_lam=with_lam)
    frozen = ("tokenizer", "lam") if with_lam else ("tokenizer",)
    n = TOKENIZER.num_tokens
    example = (
        jnp.zeros((1, WORDS), jnp.int32),
        jnp.zeros((1, FRAMES, 16, 16, 3), jnp.float32),
        jnp.zeros((1, FRAMES), jnp.int32),
        jnp.ones((1,), jnp.int32),
        jnp.zeros((1, FRAMES, n), bool),
        jnp.zeros((1, FRAMES), bool),
    )
    state, shardings = create_train_state(
        system,
        freeze_groups(optax.sgd(1.0), frozen),
        example,
        jax.random.key(0),
        mesh,
        LOGICAL_AXIS_RULES,
    )
    step_fn = functools.partial(
        wam_train_step,
        num_tokens=n,
        mode_probs=(0.5, 0.3, 0.2),
        min_mask_rate=0.5,
        max_mask_rate=1.0,
        action_loss_weight=1.0,
    )
    step = jit_train_step(step_fn, mesh, shardings, LOGICAL_AXIS_RULES)
    losses = []
    for _ in range(steps):
        sharded = {k: jax.device_put(v, batch_sharding(mesh)) for k, v in batch.items()}
        state, metrics = step(state, sharded, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    return losses, jax.device_get(state.params)


def _max_abs_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


@pytest.mark.parametrize("with_lam", [True])
def test_wam_step_matches_single_device(with_lam):
    batch = tiny_batch(batch=8, seed=3)
    batch["actions"][4:] = -1  # half the clips unlabelled
    ref_losses, ref_params = _run(with_lam, (1, 1, 1), batch)
    losses, params = _run(with_lam, (2, 2, 2), batch)
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    assert _max_abs_diff(ref_params, params) < 1e-5
    _, init_params = _run(with_lam, (2, 2, 2), batch, steps=0)
    assert _max_abs_diff(init_params["wam"], params["wam"]) > 1e-4
    assert _max_abs_diff(init_params["tokenizer"], params["tokenizer"]) == 0.0
    if with_lam:
        assert _max_abs_diff(init_params["lam"], params["lam"]) == 0.0
