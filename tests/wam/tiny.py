"""A tiny WAM system (4-token frames of 16x16 pixels) and a batch for it, for the WAM tests."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.lam import LAMConfig
from genie_jax.tokenizer import TokenizerConfig
from tests.dynamics.tiny import random_params
from wam_jax.config import WAMConfig
from wam_jax.steps import wam_losses
from wam_jax.system import NO_LABEL, WAMSystem

FRAMES, WORDS, ACTIONS, VOCAB_WORDS = 5, 3, 7, 11

_TINY_VIDEO_MODEL = dict(
    frame_size=16,
    patch_size=8,
    max_frames=FRAMES,
    encoder_layers=1,
    encoder_dim=16,
    encoder_heads=2,
    decoder_layers=1,
    decoder_dim=16,
    decoder_heads=2,
    latent_dim=8,
)
TOKENIZER = TokenizerConfig(codebook_size=16, **_TINY_VIDEO_MODEL)
LAM = LAMConfig(num_actions=4, **_TINY_VIDEO_MODEL)


def tiny_wam_config(**overrides) -> WAMConfig:
    """The tests' small backbone: 2 layers of width 32, FRAMES frames, WORDS words."""
    wam = WAMConfig(
        num_layers=2, dim=32, num_heads=2, mlp_ratio=2, max_frames=FRAMES, max_words=WORDS
    )
    return dataclasses.replace(wam, **overrides)


def tiny_system(with_lam: bool = False, **wam_overrides) -> WAMSystem:
    wam = tiny_wam_config(**wam_overrides)
    return WAMSystem(
        TOKENIZER, LAM if with_lam else None, wam, num_actions=ACTIONS, num_words=VOCAB_WORDS
    )


def tiny_batch(batch: int = 2, seed: int = 0, labelled: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    length = np.array([FRAMES, FRAMES - 2] * batch)[:batch]
    actions = rng.integers(0, ACTIONS, (batch, FRAMES)).astype(np.int32)
    t = np.arange(FRAMES)[None, :]
    actions[t >= length[:, None] - 1] = NO_LABEL  # no action after the last frame
    if not labelled:
        actions[:] = NO_LABEL
    return {
        "words": rng.integers(1, VOCAB_WORDS, (batch, WORDS)).astype(np.int32),
        "video": rng.integers(0, 256, (batch, FRAMES, 16, 16, 3)).astype(np.uint8),
        "actions": actions,
        "length": length.astype(np.int32),
    }


def system_inputs(batch, video_hidden, slots_hidden):
    return (
        jnp.asarray(batch["words"]),
        jnp.asarray(batch["video"], jnp.float32) / 255.0,
        jnp.asarray(batch["actions"]),
        jnp.asarray(batch["length"]),
        video_hidden,
        slots_hidden,
    )


def tiny_params(system: WAMSystem, batch, seed: int = 0) -> dict:
    video_hidden = jnp.zeros(batch["actions"].shape + (TOKENIZER.num_tokens,), bool)
    inputs = system_inputs(batch, video_hidden, jnp.zeros(batch["actions"].shape, bool))
    return random_params(system, *inputs, seed=seed)


def example_inputs() -> tuple[jnp.ndarray, ...]:
    """One all-zero sample of the WAM system's inputs, for initializing a train state."""
    return (
        jnp.zeros((1, WORDS), jnp.int32),
        jnp.zeros((1, FRAMES, 16, 16, 3), jnp.float32),
        jnp.zeros((1, FRAMES), jnp.int32),
        jnp.ones((1,), jnp.int32),
        jnp.zeros((1, FRAMES, TOKENIZER.num_tokens), bool),
        jnp.zeros((1, FRAMES), bool),
    )


@functools.partial(jax.jit, static_argnums=0)
def tiny_apply(system: WAMSystem, params, batch, video_hidden, slots_hidden):
    """`system`'s (logits, aux) on `batch` under the given masks, compiled once per system and
    shapes (eager, each of the model's operations would compile on its own)."""
    return system.apply({"params": params}, *system_inputs(batch, video_hidden, slots_hidden))


@functools.partial(jax.jit, static_argnums=0)
def tiny_losses(system: WAMSystem, params, batch, video_hidden, slots_hidden, **weights):
    """`wam_losses` (loss, metrics) of `system` on `batch` under the given masks (compiled;
    the weights are traced, so one program serves every value)."""
    logits, aux = system.apply(
        {"params": params}, *system_inputs(batch, video_hidden, slots_hidden)
    )
    return wam_losses(
        logits,
        aux,
        jnp.asarray(batch["actions"]),
        jnp.asarray(batch["length"]),
        video_hidden,
        slots_hidden,
        **weights,
    )
