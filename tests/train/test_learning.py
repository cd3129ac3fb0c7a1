"""The tokenizer learns: it overfits a small batch of real CoinRun clips past a PSNR threshold."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.data.pipeline import make_train_iterator, to_global_batch
from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state, make_optimizer
from genie_jax.train.steps import jit_eval_step, jit_train_step, tokenizer_train_step
from tests.conftest import XLA_DEFAULT_OPTIMIZATION

CONFIG = TokenizerConfig(
    patch_size=16,
    max_frames=8,
    encoder_layers=1,
    encoder_dim=64,
    encoder_heads=4,
    decoder_layers=2,
    decoder_dim=64,
    decoder_heads=4,
    codebook_size=128,
    latent_dim=16,
)
STEPS = 200
PSNR_THRESHOLD = 17.0  # dB on the training batch; an untrained model gives about 7 dB


def test_tokenizer_overfits_real_coinrun_clips(coinrun_dir):
    from genie_jax.train.steps import tokenizer_eval_step

    # One device: this test is about learning; sharding has its own tests, and 200 steps on
    # 8 simulated devices spend most of their time in cross-device reductions.
    mesh = make_mesh((1, 1, 1), jax.devices()[:1])
    iterator = make_train_iterator(
        coinrun_dir, global_batch_size=8, clip_len=8, frame_size=64, seed=0
    )
    batch = to_global_batch(next(iterator), batch_sharding(mesh))
    assert np.std(np.asarray(batch["video"])) > 10  # real frames, not a blank screen
    tx = make_optimizer(learning_rate=3e-3, warmup_steps=10, total_steps=STEPS, b2=0.99)
    example = (jnp.zeros((1, 8, 64, 64, 3)),)
    state, shardings = create_train_state(
        Tokenizer(CONFIG), tx, example, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
    )
    step = jit_train_step(
        functools.partial(tokenizer_train_step, dead_code_threshold=10),
        mesh,
        shardings,
        LOGICAL_AXIS_RULES,
    )
    # 200 steps of one program: compiled with XLA's default optimization (the suite turns it
    # off to compile faster), which runs each step about twice as fast.
    step = step.lower(state, batch, jax.random.key(1)).compile(
        compiler_options=XLA_DEFAULT_OPTIMIZATION
    )
    evaluate = jit_eval_step(tokenizer_eval_step, mesh, shardings, LOGICAL_AXIS_RULES)
    before = float(evaluate(state, batch)["psnr"])
    for _ in range(STEPS):
        state, metrics = step(state, batch, jax.random.key(1))
        # Wait for each step, as the training loop does (it fetches metrics one step late):
        # 200 steps queued at once on the 8 simulated devices is the one place the suite has
        # died with a silent SIGABRT (3 runs in about 8).
        jax.block_until_ready(metrics["loss"])
    after = evaluate(state, batch)
    assert before < 15.0
    assert float(after["psnr"]) > PSNR_THRESHOLD, (before, jax.device_get(after))
    assert float(after["codebook_usage"]) * CONFIG.codebook_size > 4  # not collapsed to a code
