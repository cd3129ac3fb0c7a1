"""Sharded == unsharded for the WAM train step (with the latent-action LAM) over the mesh
matrix; see tests/sharded_run.py. The frozen tokenizer and LAM must not move.
"""

import functools

import numpy as np
import optax
import pytest

from genie_jax.train.state import freeze_groups
from tests.sharded_run import max_abs_diff, run_steps
from tests.wam.tiny import TOKENIZER, example_inputs, tiny_batch, tiny_system
from wam_jax.steps import wam_train_step

pytestmark = pytest.mark.long_running(seconds=45)  # see tests/conftest.py


def _run(mesh_shape, batch, start=None):
    system = tiny_system(with_lam=True)
    frozen = ("tokenizer", "lam")
    n = TOKENIZER.num_tokens
    example = example_inputs()
    step_fn = functools.partial(
        wam_train_step,
        num_tokens=n,
        mode_probs=(0.5, 0.3, 0.2),
        min_mask_rate=0.5,
        max_mask_rate=1.0,
        action_loss_weight=1.0,
    )
    tx = freeze_groups(optax.sgd(1.0), frozen)
    return run_steps(system, tx, example, step_fn, mesh_shape, batch, start=start)


BATCH = tiny_batch(batch=8, seed=3)
BATCH["actions"][4:] = -1  # half the clips unlabelled


@functools.cache
def _reference():
    """One device: (losses, initial params, final params)."""
    return _run((1, 1, 1), BATCH)


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (4, 2, 1), (2, 2, 2)])
def test_wam_step_matches_single_device(mesh_shape):
    """With the latent-action LAM, so every part of the WAM system is in the step."""
    ref_losses, start, ref_params = _reference()
    losses, _, params = _run(mesh_shape, BATCH, start=start)
    init_params = start.params
    np.testing.assert_allclose(losses, ref_losses, rtol=0, atol=1e-5)
    assert max_abs_diff(ref_params, params) < 1e-5
    assert max_abs_diff(init_params["wam"], params["wam"]) > 1e-4
    assert max_abs_diff(init_params["tokenizer"], params["tokenizer"]) == 0.0
    assert max_abs_diff(init_params["lam"], params["lam"]) == 0.0
