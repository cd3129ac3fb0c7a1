"""A WAM trained from scratch on real BabyAI demonstrations beats random play in closed loop.

Everything runs here: the dataset (the expert bot on GoToLocal), the genie tokenizer on its
frames, then the WAM (joint video + action training, every label kept) on that tokenizer, and
`evaluate_wam` on held-out seeds. Sizes are cut to CI's budget (a few minutes on 2 cores).

The comparison is success within 16 steps: the bot needs about 5 a GoToLocal episode, and
random play's wins come from wandering until the env's limit of 64 (about a quarter of the
episodes then, but about 6% within 16 steps). A policy that heads for the target wins early.
"""

import pathlib
from types import SimpleNamespace

import pytest

from genie_jax.config_loading import load_config
from genie_jax.train.loop import train
from wam_jax.closed_loop import STEP_BUDGETS, play_random, success_within
from wam_jax.data import build_babyai
from wam_jax.evaluate import evaluate_wam
from wam_jax.task import train_wam

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / "experiments/configs/babyai.py")
EPISODES = 600  # 480 / 60 / 60 for train / validation / test
EVAL_EPISODES = 50
BUDGET = "16"  # steps; one of closed_loop.STEP_BUDGETS
SMALL = {
    "tokenizer.model.encoder_layers": 1,
    "tokenizer.model.decoder_layers": 1,
    "tokenizer.model.encoder_dim": 32,
    "tokenizer.model.decoder_dim": 32,
    "tokenizer.model.encoder_heads": 2,
    "tokenizer.model.decoder_heads": 2,
    "tokenizer.model.codebook_size": 32,
    "tokenizer.num_steps": 300,
    "wam.model.num_layers": 2,
    "wam.model.dim": 64,
    "wam.num_steps": 400,
    "eval_every": 1_000_000,
    "checkpoint_every": 1_000_000,
    "log_every": 100,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("wam_learns")
    data_dir = str(root / "data")
    build_babyai(data_dir, "BabyAI-GoToLocal-v0", episodes=EPISODES, clip_len=8)
    config = load_config(f"{CONFIG}:smoke", {"data_dir": data_dir, **SMALL})
    train(config, root / "tokenizer", "tokenizer")
    config = load_config(
        f"{CONFIG}:smoke",
        {"data_dir": data_dir, "tokenizer_workdir": str(root / "tokenizer"), **SMALL},
    )
    train_wam(config, root / "wam")
    return evaluate_wam(root / "wam", episodes=EVAL_EPISODES, imagine=False)


def test_trained_wam_beats_random_play_in_closed_loop(trained):
    wam = trained["success_within"][BUDGET]
    random = trained["random_policy"]["success_within"][BUDGET]
    assert random < 0.15, trained["random_policy"]  # what makes the budget a fair test
    # At least twice random play's share and 5 points above it. Measured: 24% against 6%
    # (8 test devices); the same training on 2 devices reached 16%.
    assert wam >= max(2 * random, random + 0.05), (
        trained["success_within"],
        trained["random_policy"],
    )
    assert trained["episodes"] == EVAL_EPISODES


def test_success_within_counts_wins_up_to_each_budget():
    episodes = [
        SimpleNamespace(success=True, actions=[0] * 5),
        SimpleNamespace(success=True, actions=[0] * 16),
        SimpleNamespace(success=True, actions=[0] * 17),
        SimpleNamespace(success=False, actions=[0] * 3),  # e.g. the bot's own episode cut short
    ]
    assert STEP_BUDGETS == (8, 16, 32)
    assert success_within(episodes) == {"8": 0.25, "16": 0.5, "32": 0.75}


def test_random_play_reports_the_same_budgets():
    result = play_random("BabyAI-GoToLocal-v0", list(range(100_000, 100_010)), 64, repeats=2)
    within = result["success_within"]
    assert set(within) == {str(b) for b in STEP_BUDGETS}
    assert within["8"] <= within["16"] <= within["32"] <= result["success_rate"]
