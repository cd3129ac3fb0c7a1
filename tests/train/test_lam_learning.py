"""The LAM on real CoinRun clips: a short training must not collapse onto one latent action."""

import json

import numpy as np

from genie_jax.train.loop import train
from tests.train.test_genie_pipeline import TINY_LAM


def test_lam_uses_several_actions_and_learns(tiny_config, tmp_path):
    """Collapse (every transition coded by the same latent action) is the LAM's classic
    failure; dead-code reset and the small codebook must keep at least two codes in use."""
    overrides = {
        **TINY_LAM,
        "lam.num_steps": 60,
        "lam.dead_code_threshold": 10,
        "lam.optimizer.learning_rate": 3e-3,
        "eval_every": 60,
        "checkpoint_every": 60,
    }
    summary = train(tiny_config(**overrides), tmp_path, "lam")
    num_actions = 6
    codes_in_use = round(summary["eval"]["codebook_usage"] * num_actions)
    assert codes_in_use >= 2, summary["eval"]
    assert summary["eval"]["codebook_perplexity"] > 1.2, summary["eval"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    mse = [row["train/mse"] for row in rows if "train/mse" in row]
    assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:3]), mse
