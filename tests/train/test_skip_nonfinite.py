"""`skip_nonfinite_updates`: a step with a NaN loss leaves the state exactly as it was."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state
from genie_jax.train.steps import jit_train_step, tokenizer_train_step
from tests.sharded_run import max_abs_diff

CONFIG = TokenizerConfig(
    frame_size=16, patch_size=4, max_frames=4, encoder_layers=1, encoder_dim=32,
    encoder_heads=4, decoder_layers=1, decoder_dim=32, decoder_heads=4, codebook_size=32,
    latent_dim=8,
)  # fmt: skip


def test_nan_batch_is_skipped_and_a_good_one_is_not():
    mesh = make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings = create_train_state(
        Tokenizer(CONFIG), optax.adam(1e-3), (jnp.zeros((1, 4, 16, 16, 3)),),
        jax.random.key(0), mesh, LOGICAL_AXIS_RULES,
    )  # fmt: skip
    step = jit_train_step(
        functools.partial(tokenizer_train_step, dead_code_threshold=1),
        mesh, shardings, LOGICAL_AXIS_RULES, skip_nonfinite=True,
    )  # fmt: skip
    good = np.random.default_rng(0).uniform(0, 255, (8, 4, 16, 16, 3)).astype(np.float32)
    bad = good.copy()
    bad[3, 1, 2, 2, 0] = np.nan  # one pixel of one clip
    before = jax.device_get(state)
    state, metrics = step(
        state, {"video": jax.device_put(bad, batch_sharding(mesh))}, jax.random.key(1)
    )
    assert float(metrics["skipped_update"]) == 1.0 and not np.isfinite(float(metrics["loss"]))
    after = jax.device_get(state)
    assert int(after.step) == int(before.step) + 1  # the data moved on
    assert max_abs_diff(before.params, after.params) == 0.0
    assert max_abs_diff(before.opt_state, after.opt_state) == 0.0
    assert max_abs_diff(before.model_state, after.model_state) == 0.0
    state, metrics = step(
        state, {"video": jax.device_put(good, batch_sharding(mesh))}, jax.random.key(1)
    )
    assert float(metrics["skipped_update"]) == 0.0
    assert max_abs_diff(after.params, jax.device_get(state.params)) > 0.0
