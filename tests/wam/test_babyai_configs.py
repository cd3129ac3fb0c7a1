"""The BabyAI presets: a labeller variant is its base variant with only the WAM's model
options and step count changed, so it reads the same data, tokenizer and label plan."""

import pytest

from genie_jax.config_loading import ConfigError, load_config
from wam_jax.config import WAMConfig

CONFIG = "experiments/configs/babyai.py"


@pytest.mark.parametrize("base", ["smoke", "cpu"])
def test_labeller_variant_changes_only_the_wam_model_and_steps(base):
    plain = load_config(f"{CONFIG}:{base}").to_dict()
    labeller = load_config(f"{CONFIG}:{base}_labeller").to_dict()
    model = labeller["wam"].pop("model")
    plain_model = plain["wam"].pop("model")
    assert labeller.pop("variant") == f"{base}_labeller" and plain.pop("variant") == base
    steps = labeller["wam"].pop("num_steps")
    plain["wam"].pop("num_steps")
    assert labeller == plain  # tokenizer, data, label fraction and seed, losses: all the same
    changed = {key for key in model if model[key] != plain_model[key]}
    assert changed == {"spatial_positions", "target_head", "mode_probs", "grid_conv", "ahead_head"}
    assert (model["spatial_positions"], model["target_head"]) == ("learned", False)
    assert not model["grid_conv"] and not model["ahead_head"]
    config = WAMConfig(**model)  # a valid backbone
    inverse_share = config.mode_probs[2]
    assert inverse_share == pytest.approx(0.5) and steps > 0


def test_unknown_babyai_variant_is_named():
    with pytest.raises((ConfigError, ValueError), match="smoke_labeler"):
        load_config(f"{CONFIG}:smoke_labeler")
