"""Every CoinRun preset builds its three models; the `paper` preset has the paper's sizes."""

import math

import jax
import pytest

from genie_jax.config_loading import load_config
from genie_jax.train.tasks import dynamics_task

CONFIG = "experiments/configs/coinrun.py"


def _param_counts(variant: str) -> dict[str, int]:
    config = load_config(f"{CONFIG}:{variant}", {"tokenizer_workdir": "t", "lam_workdir": "l"})
    task = dynamics_task(config)  # builds all three model configs and checks frame counts
    shapes = jax.eval_shape(lambda: task.model.init(jax.random.key(0), *task.example_inputs))
    return {
        part: sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))
        for part, tree in shapes["params"].items()
    }


@pytest.mark.parametrize("variant", ["smoke", "cpu", "tiny", "case_study"])
def test_preset_builds(variant):
    counts = _param_counts(variant)
    assert set(counts) == {"tokenizer", "lam", "dynamics"}
    assert all(n > 0 for n in counts.values())


def test_tiny_preset_has_the_speed_target_sizes():
    """The scale-out issue's CPU target: d64, MLP 256, 2 blocks, 4 heads, patch 4, 16x64x64
    frames, batch 2, for all three parts."""
    config = load_config(f"{CONFIG}:tiny")
    assert (config.clip_len, config.frame_size) == (16, 64)
    for part in ("tokenizer", "lam"):
        model = config[part].model
        assert model.patch_size == 4
        for stack in ("encoder", "decoder"):
            assert (model[f"{stack}_layers"], model[f"{stack}_dim"]) == (2, 64)
            assert (model[f"{stack}_heads"], model.mlp_ratio) == (4, 4)
    dyn = config.dynamics.model
    assert (dyn.num_layers, dyn.dim, dyn.num_heads, dyn.mlp_ratio) == (2, 64, 4, 4)
    assert [config[part].batch_size for part in ("tokenizer", "lam", "dynamics")] == [2, 2, 2]


def test_paper_preset_is_eleven_billion_parameters():
    config = load_config(f"{CONFIG}:paper")
    tok = config.tokenizer.model
    # The tokenizer sizes GENIE_FACTS states.
    assert (tok.patch_size, tok.codebook_size, tok.latent_dim) == (4, 1024, 32)
    assert (tok.encoder_layers, tok.encoder_dim) == (12, 512)
    assert (tok.decoder_layers, tok.decoder_dim) == (20, 1024)
    assert config.lam.model.num_actions == 8
    counts = _param_counts("paper")
    assert 250e6 < counts["lam"] < 350e6
    assert 9.9e9 < counts["dynamics"] < 10.3e9
    assert 10.5e9 < sum(counts.values()) < 11.5e9
    for part in ("tokenizer", "lam", "dynamics"):
        assert config[part].model.dtype == "bfloat16"
        assert config[part].model.scan_layers
