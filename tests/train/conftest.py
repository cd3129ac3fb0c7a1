"""Tiny tokenizer configs over the session's real CoinRun dataset for loop-level tests."""

import pathlib

import pytest

from genie_jax.config_loading import load_config

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / "experiments/configs/coinrun.py")

TINY_TOKENIZER = {
    "clip_len": 8,
    "tokenizer.model.patch_size": 16,
    "tokenizer.model.max_frames": 8,
    "tokenizer.model.encoder_layers": 1,
    "tokenizer.model.encoder_dim": 32,
    "tokenizer.model.encoder_heads": 2,
    "tokenizer.model.decoder_layers": 1,
    "tokenizer.model.decoder_dim": 32,
    "tokenizer.model.decoder_heads": 2,
    "tokenizer.model.codebook_size": 64,
    "tokenizer.model.latent_dim": 8,
    "tokenizer.batch_size": 8,
    "tokenizer.num_steps": 6,
    "tokenizer.dead_code_threshold": 2,
    "tokenizer.optimizer.warmup_steps": 1,
    "log_every": 1,
    "eval_every": 3,
    "eval_batches": 1,
    "checkpoint_every": 3,
}


@pytest.fixture
def tiny_config(coinrun_dir):
    """The smoke config shrunk to a 1+1-layer, 16-token-per-frame tokenizer."""

    def make(**overrides):
        values = {"data_dir": coinrun_dir, **TINY_TOKENIZER, **overrides}
        return load_config(f"{CONFIG}:smoke", values)

    return make
