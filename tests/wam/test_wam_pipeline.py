"""The WAM end to end on real BabyAI data: tokenizer (genie loop) -> `train_wam` on a (2,2,2)
mesh -> one checkpoint used as policy, world model and inverse model; `wam eval`; bad input."""

import contextlib
import io
import json
import pathlib
import shutil
import types

import flax.linen as nn
import jax
import numpy as np
import pytest

from genie_jax.config_loading import ConfigError
from genie_jax.data.pipeline import make_train_iterator
from genie_jax.train import loop as genie_loop
from genie_jax.train.loop import train
from genie_jax.train.pretrained import PretrainedMismatchError, load_pretrained_params
from tests.wam.tiny_runs import CLIP, TINY, build_tiny_data, tiny_run_config, train_tiny_runs
from wam_jax.agent import load_agent
from wam_jax.cli import main
from wam_jax.closed_loop import play_wam
from wam_jax.data import DataError, open_babyai_split
from wam_jax.data.babyai_builder import DATASET_NAME
from wam_jax.data.babyai_env import NUM_ACTIONS
from wam_jax.data.pipeline import NO_LABEL, WAMRecord, cells_to_tokens, labelled_episodes
from wam_jax.data.vocab import UnknownWordError, Vocabulary
from wam_jax.evaluate import evaluate_wam
from wam_jax.labelling import NamedActions
from wam_jax.run_start import recorded_start
from wam_jax.task import (
    ADDABLE_MODULES,
    ahead_field,
    target_patch_size,
    train_wam,
    wam_system_from_config,
    wam_task,
)

pytestmark = pytest.mark.long_running(seconds=150)  # see tests/conftest.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return build_tiny_data(tmp_path_factory.mktemp("babyai"))


_config = tiny_run_config


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    return train_tiny_runs(data_dir, tmp_path_factory.mktemp("runs"))


def test_training_ran_on_the_mesh_and_saved_the_vocabulary(runs):
    root, summary = runs
    assert summary["step"] == 4 and np.isfinite(summary["train"]["loss"])
    assert {"policy_action_accuracy", "world_video_accuracy"} <= set(summary["eval"])
    words = json.loads((root / "wam" / "vocab.json").read_text())["words"]
    assert {"go", "to", "the"} <= set(words)


def test_one_checkpoint_three_uses(runs, data_dir):
    agent = load_agent(runs[0] / "wam")  # trained on 8 devices, loaded on one
    item = open_babyai_split(data_dir, "test", clip_len=CLIP)[0]
    length = int(item["length"])
    assert length >= 3
    words = agent.encode_missions([item["mission"].decode()] * 2)
    history = [item["video"][:2], item["video"][:3]]
    past = [item["actions"][:1], item["actions"][:2]]
    policy = agent.act(words, history, past, jax.random.key(0), imagine=True)
    assert policy["actions"].shape == (2,) and set(policy["actions"]) <= set(range(NUM_ACTIONS))
    np.testing.assert_allclose(policy["action_probs"].sum(-1), 1.0, rtol=1e-5)
    assert policy["imagined"].shape == (2, 64, 64, 3)
    world = agent.act(
        words, history, past, jax.random.key(0), imagine=True, given_actions=np.array([2, 0])
    )
    np.testing.assert_array_equal(world["actions"], [2, 0])
    inverse = agent.infer_actions(words, np.stack([item["video"][:length]] * 2))
    assert inverse.shape == (2, length - 1)


def _head_replaced(params: dict, head: str, seed: int) -> dict:
    """`params` with the backbone's `head` kernel replaced by random numbers."""
    params = jax.tree.map(lambda x: x, params)  # a new tree; the leaves are shared
    kernel = params["wam"][head]["kernel"]
    params["wam"][head]["kernel"] = jax.random.normal(jax.random.key(seed), kernel.shape)
    return params


def test_imagination_policy_acts_through_the_imagined_frame(runs, data_dir):
    """`action_source="imagination"`: the action head on (last frame, imagined frame) picks
    the action, so the policy head plays no part; with the default source the reverse."""
    item = open_babyai_split(data_dir, "test", clip_len=CLIP)[0]
    history = [item["video"][:2], item["video"][:3]]
    past = [item["actions"][:1], item["actions"][:2]]
    for source, used, unused in [
        ("imagination", "action_head", "policy_head"),
        ("policy", "policy_head", "action_head"),
    ]:
        agent = load_agent(runs[0] / "wam", action_source=source)
        words = agent.encode_missions([item["mission"].decode()] * 2)
        trained = agent.params

        def probs(params, agent=agent, words=words):
            agent.params = params  # same shapes: the jitted step is reused
            return agent.act(words, history, past, jax.random.key(0))["action_probs"]

        base = probs(trained)
        np.testing.assert_array_equal(probs(_head_replaced(trained, unused, 1)), base)
        assert np.abs(probs(_head_replaced(trained, used, 2)) - base).max() > 1e-3, source
    with pytest.raises(ValueError, match="action_source 'dream'"):
        load_agent(runs[0] / "wam", action_source="dream")


def test_bad_input_is_named(runs):
    agent = load_agent(runs[0] / "wam")
    with pytest.raises(UnknownWordError, match="'dragon'"):
        agent.encode_missions(["go to the purple dragon"])
    words = agent.encode_missions(["go to the red ball"])
    small = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="tokenizer was trained on"):
        agent.act(words, [small], [np.zeros(1, np.int32)], jax.random.key(0))


def test_wam_eval_writes_metrics(runs):
    metrics = evaluate_wam(runs[0] / "wam", episodes=2)
    saved = json.loads((runs[0] / "wam" / "eval" / "metrics.json").read_text())
    for key in ("success_rate", "mean_episode_length", "video_psnr_by_step", "random_policy"):
        assert key in saved
    assert metrics["meta"]["label_fraction"] == 0.5
    assert len(metrics["video_psnr_by_step"]) == len(metrics["episodes_by_step"]) > 0
    assert metrics["episodes_by_step"][0] == 2
    assert pathlib.Path(metrics["meta"]["outputs"][-1]).name == "episode.gif"
    assert pathlib.Path(metrics["meta"]["outputs"][-1]).is_file()
    rows = [json.loads(line) for line in open(metrics["meta"]["outputs"][1])]
    assert [row["seed"] for row in rows] == list(range(*metrics["meta"]["seeds"]))
    for row in rows:
        assert row["length"] == len(row["actions"]) == len(row["expert_actions"]) > 0
    assert metrics["success_rate"] == np.mean([row["success"] for row in rows])
    assert 0.0 <= metrics["expert_agreement"] <= 1.0
    assert 0.0 <= metrics["shortest_path_share"] <= 1.0
    assert metrics["facing_blocker_steps"] == sum(sum(row["facing_blocker"]) for row in rows)
    for row in rows:  # GoToLocal: every action scored against the shortest paths
        assert len(row["on_shortest_path"]) == row["length"] and row["fewest_actions"] >= 0
    # The smoke preset's target head: where it pointed before every action.
    assert 0.0 <= metrics["target_on_named"] <= 1.0
    for row in rows:
        for key in (
            "stalled",
            "facing_blocker",
            "target_on_named",
            "target_on_faced",
            "facing_object",
            "ahead",
            "ahead_predicted",  # the smoke preset's ahead head
        ):
            assert len(row[key]) == row["length"], key
    said = [p == t for row in rows for p, t in zip(row["ahead_predicted"], row["ahead"])]
    assert metrics["ahead_accuracy"] == pytest.approx(np.mean(said))
    assert metrics["wrong_pickup_episodes"] == np.mean([bool(row["wrong_pickups"]) for row in rows])
    table = runs[0] / "study.json"
    assert main(["summarize", "--out", str(table), str(runs[0] / "wam")]) == 0
    study = json.loads(table.read_text())
    (row,), (group,) = study["runs"], study["groups"]
    assert row["kind"] == "wam (joint)" and row["success_rate"] == metrics["success_rate"]
    config_seed = json.loads((runs[0] / "wam" / "config.json").read_text())["seed"]
    assert row["train_seed"] == metrics["meta"]["train_seed"] == config_seed
    assert group["runs"] == 1 and group["success_mean"] == metrics["success_rate"]
    # Other seeds, a sampling temperature and another draw each get a directory of their own.
    first = metrics["meta"]["seeds"][0]
    sampled = [
        evaluate_wam(
            runs[0] / "wam",
            episodes=1,
            seeds=(first + 5, first + 6),
            imagine=False,
            action_temperature=1.0,
            sample_seed=draw,
            max_steps=2,
        )
        for draw in (0, 3)
    ]
    step = metrics["meta"]["step"]
    names = [pathlib.Path(m["meta"]["outputs"][0]).parent.name for m in [metrics, *sampled]]
    assert names == [
        f"step_{step}_seeds{first}-{first + 2}",
        f"step_{step}_seeds{first + 5}-{first + 6}_t1_max2",
        f"step_{step}_seeds{first + 5}-{first + 6}_t1_draw3_max2",
    ]
    assert [m["meta"]["sample_seed"] for m in sampled] == [0, 3]
    assert all((runs[0] / "wam" / "eval" / name / "metrics.json").is_file() for name in names)
    with pytest.raises(ValueError, match="sample_seed must be 0 or more, got -1"):
        evaluate_wam(runs[0] / "wam", episodes=1, sample_seed=-1)


def test_an_episodes_draw_does_not_depend_on_the_batch_it_is_played_in(runs):
    """Sampled actions and imagined frames are keyed by (sample seed, env seed, step): an
    episode played beside two others (a batch of three padded to four, shrinking as they
    end), or queued behind them (at most two side by side), takes the same actions and
    imagines the same frames as played alone."""
    agent = load_agent(runs[0] / "wam", action_temperature=1.0)
    seeds = [70_001, 70_002, 70_003]
    _, together = play_wam(agent, agent.config.level, seeds, max_steps=5)
    _, queued = play_wam(agent, agent.config.level, seeds, max_steps=5, batch_size=2)
    for i, seed in enumerate(seeds):
        _, (alone,) = play_wam(agent, agent.config.level, [seed], max_steps=5)
        assert len(alone.actions) > 0 and alone.seed == together[i].seed == queued[i].seed
        assert alone.actions == together[i].actions == queued[i].actions
        for other in (together[i], queued[i]):
            np.testing.assert_allclose(
                np.stack(alone.imagined), np.stack(other.imagined), atol=1
            )  # uint8 pixels; the batch size may move a float's last bit
    with pytest.raises(ValueError, match="batch_size must be 1 or more episodes, got 0"):
        play_wam(agent, agent.config.level, seeds, batch_size=0)
    _, redrawn = play_wam(agent, agent.config.level, seeds, max_steps=5, seed=1)
    assert any(
        not np.array_equal(np.stack(a.imagined), np.stack(b.imagined))
        for a, b in zip(together, redrawn, strict=True)
    )  # another sample seed, other draws


def test_stage_needs_its_runs(data_dir, tmp_path):
    with pytest.raises(ConfigError, match="lam_workdir"):
        train_wam(_config(data_dir, tokenizer_workdir="t", **{"wam.stage": "pretrain"}), tmp_path)
    with pytest.raises(ConfigError, match="init_workdir"):
        train_wam(
            _config(data_dir, tokenizer_workdir="t", lam_workdir="l", **{"wam.stage": "align"}),
            tmp_path,
        )

    no_labels = {"wam.label_fraction": 0.0, "wam.behaviour_cloning": True}
    with pytest.raises(ConfigError, match="behaviour cloning needs labelled episodes"):
        wam_task(_config(data_dir, tokenizer_workdir="t", **no_labels), tmp_path / "bc")
    bc_pseudo = {"wam.behaviour_cloning": True, "wam.pseudo_label_weight": 1.0}
    with pytest.raises(ConfigError, match="pseudo_label_weight > 0 with behaviour_cloning"):
        wam_task(_config(data_dir, tokenizer_workdir="t", **bc_pseudo), tmp_path / "bcp")
    with pytest.raises(ConfigError, match="pseudo_label_threshold=1.5 in"):
        wam_task(
            _config(data_dir, tokenizer_workdir="t", **{"wam.pseudo_label_threshold": 1.5}),
            tmp_path / "p",
        )
    with pytest.raises(ConfigError, match="policy_loss_weight=-1"):
        wam_task(
            _config(data_dir, tokenizer_workdir="t", **{"wam.policy_loss_weight": -1.0}),
            tmp_path / "neg",
        )
    with pytest.raises(ConfigError, match="mission_contrast_share=1.5 must be in"):
        wam_task(
            _config(data_dir, tokenizer_workdir="t", **{"wam.mission_contrast_share": 1.5}),
            tmp_path / "mc",
        )
    no_ahead = {"wam.mission_contrast_share": 0.25, "wam.model.ahead_head": False}
    with pytest.raises(ConfigError, match="needs config.wam.model.ahead_head"):
        wam_task(_config(data_dir, tokenizer_workdir="t", **no_ahead), tmp_path / "mca")
    # GoToLocal missions name objects by colour and type too: the contrast is set up.
    contrast = {"wam.mission_contrast_share": 0.25}
    task, vocab = wam_task(_config(data_dir, tokenizer_workdir="t", **contrast), tmp_path / "mc2")
    assert task.train_step.keywords["mission_contrast_share"] == 0.25
    assert task.train_step.keywords["object_word_ids"] == vocab.object_word_ids()
    assert vocab.object_word_ids()[1]  # the data's missions name object types


def test_joint_and_bc_runs_can_start_from_another_wam_run(data_dir, tmp_path):
    """`wam.init_workdir` outside the align stage: the new run's `wam` weights and vocabulary
    come from that run (the loading itself is the align test's), from its newest checkpoint
    or the one `wam.init_step` names; pretraining refuses it."""
    init = tmp_path / "init"
    for step in (600, 1200):  # checkpoint directories only: the task reads their steps
        (init / "checkpoints" / str(step)).mkdir(parents=True)
    Vocabulary(["go", "to", "the", "dragon"]).save(init / "vocab.json")  # not this data's
    for extra in ({}, {"wam.behaviour_cloning": True}):
        config = _config(
            data_dir, tokenizer_workdir="t", **{"wam.init_workdir": str(init)}, **extra
        )
        task, vocab = wam_task(config, tmp_path / "w")
        assert task.pretrained["wam"] == (str(init), "wam", ADDABLE_MODULES, 1200)
        assert vocab.words == ["dragon", "go", "the", "to"]
    at_600 = {"wam.init_workdir": str(init), "wam.init_step": 600}
    task, _ = wam_task(_config(data_dir, tokenizer_workdir="t", **at_600), tmp_path / "w")
    assert task.pretrained["wam"][-1] == 600
    at_700 = {**at_600, "wam.init_step": 700}
    with pytest.raises(ConfigError, match=r"no checkpoint at step 700 \(it has 600, 1200\)"):
        wam_task(_config(data_dir, tokenizer_workdir="t", **at_700), tmp_path / "w")
    plain, vocab = wam_task(_config(data_dir, tokenizer_workdir="t"), tmp_path / "plain")
    assert "wam" not in plain.pretrained and "dragon" not in vocab.words
    no_run = {"wam.init_workdir": str(tmp_path / "nothing")}
    with pytest.raises(ConfigError, match="holds no vocab.json"):
        wam_task(_config(data_dir, tokenizer_workdir="t", **no_run), tmp_path / "x")
    pretrain = {"wam.stage": "pretrain", "wam.init_workdir": str(init)}
    with pytest.raises(ConfigError, match="init_workdir with stage=pretrain"):
        wam_task(_config(data_dir, tokenizer_workdir="t", lam_workdir="l", **pretrain), tmp_path)


def test_pseudo_label_pass_is_skipped_where_every_label_is_known(data_dir, tmp_path):
    pseudo = {"wam.pseudo_label_weight": 1.0}
    weights = {
        fraction: wam_task(
            _config(data_dir, tokenizer_workdir="t", **pseudo, **{"wam.label_fraction": fraction}),
            tmp_path / str(fraction),
        )[0].train_step.keywords["pseudo_label_weight"]
        for fraction in (0.1, 1.0)
    }
    assert weights == {0.1: 1.0, 1.0: 0.0}


def test_label_fractions_are_nested_and_exact():
    ten = labelled_episodes(800, 0.1, seed=0)
    one = labelled_episodes(800, 0.01, seed=0)
    assert ten.sum() == 80 and one.sum() == 8
    assert (ten | one).sum() == 80  # the 1% set lies inside the 10% set
    assert labelled_episodes(50, 0.001, seed=0).sum() == 1  # never zero for a positive fraction


def test_unlabelled_episodes_lose_their_actions(data_dir):
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    vocab = Vocabulary.from_missions(source[i]["mission"] for i in range(len(source)))
    labels = np.zeros(int(source.metadata["splits"]["train"]["episodes"]), bool)
    labels[0] = True
    record = WAMRecord(vocab, max_words=12, labelled=labels)
    for i in range(len(source)):
        element = source[i]
        out = record.map(element)
        if int(element["episode"]) == 0:
            np.testing.assert_array_equal(out["actions"], element["actions"])
        else:
            assert (out["actions"] == -1).all()
        assert out["words"].shape == (12,) and out["words"][0] > 0


def test_policy_actions_are_the_expert_choices_of_labelled_episodes_only():
    vocab = Vocabulary.from_missions(["go to the red ball"])
    taken = np.array([2, 0, 2, NO_LABEL], np.int32)
    expert = np.array([2, 1, 2, NO_LABEL], np.int32)  # a noise step turned left at frame 1
    element = {
        "mission": b"go to the red ball",
        "video": np.zeros((4, 8, 8, 3), np.uint8),
        "actions": taken,
        "expert_actions": expert,
        "length": 4,
        "episode": 0,
        "clip_index": 0,
    }
    labels = np.array([True, False])
    out = WAMRecord(vocab, max_words=6, labelled=labels).map(element)
    np.testing.assert_array_equal(out["actions"], taken)  # what moved the frames
    np.testing.assert_array_equal(out["policy_actions"], expert)  # what the bot chose
    hidden = WAMRecord(vocab, max_words=6, labelled=labels).map({**element, "episode": 1})
    assert (hidden["actions"] == NO_LABEL).all() and (hidden["policy_actions"] == NO_LABEL).all()
    # Data without expert choices (before version 1.2.0): the action taken was the bot's.
    old = {k: v for k, v in element.items() if k != "expert_actions"}
    np.testing.assert_array_equal(WAMRecord(vocab, 6).map(old)["policy_actions"], taken)


def test_latent_action_route_pretrain_then_align(runs, data_dir):
    root = runs[0]
    lam_overrides = {
        "lam.model.patch_size": 16,
        "lam.model.max_frames": CLIP,
        "lam.model.encoder_layers": 1,
        "lam.model.encoder_dim": 32,
        "lam.model.encoder_heads": 2,
        "lam.model.decoder_layers": 1,
        "lam.model.decoder_dim": 32,
        "lam.model.decoder_heads": 2,
        "lam.num_steps": 2,
        "lam.batch_size": 4,
    }
    train(_config(data_dir, mesh_shape=(2, 2, 2), **lam_overrides), root / "lam", "lam")
    common = dict(
        tokenizer_workdir=str(root / "tok"),
        lam_workdir=str(root / "lam"),
        mesh_shape=(2, 2, 2),
        **lam_overrides,
        **{"wam.num_steps": 2},
    )
    pre = train_wam(_config(data_dir, **common, **{"wam.stage": "pretrain"}), root / "pre")
    assert pre["train"]["labelled_slots"] == 0  # no real label reaches the pretraining
    assert "latent_ce" in pre["train"]
    aligned = train_wam(
        _config(
            data_dir,
            **common,
            **{"wam.stage": "align", "wam.init_workdir": str(root / "pre")},
        ),
        root / "aligned",
    )
    assert aligned["train"]["labelled_slots"] > 0
    agent = load_agent(root / "aligned")
    item = open_babyai_split(data_dir, "test", clip_len=CLIP)[0]
    words = agent.encode_missions([item["mission"].decode()])
    out = agent.act(words, [item["video"][:2]], [item["actions"][:1]], jax.random.key(0))
    assert 0 <= int(out["actions"][0]) < NUM_ACTIONS


def test_label_balanced_batches_hold_the_configured_share(data_dir, tmp_path):
    """10% labels: half of an epoch's windows come from the labelled episodes, every
    unlabelled window still comes once, and the BC baseline is not rebalanced."""
    config = _config(
        data_dir,
        tokenizer_workdir="unused",
        **{"wam.label_fraction": 0.1, "wam.labelled_share": 0.5},
    )
    task, _ = wam_task(config, tmp_path)
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    view = task.train_source_view(source)
    natural = view.labelled_window.mean()
    assert 0 < natural < 0.25 and view.labelled_share == pytest.approx(0.5, abs=0.02)
    batches = make_train_iterator(
        data_dir,
        global_batch_size=4,
        clip_len=CLIP,
        frame_size=64,
        seed=0,
        dataset=DATASET_NAME,
        operations=task.train_operations,
        source_view=task.train_source_view,
    )
    assert len(view) % 4 == 0  # so one epoch is whole batches
    epoch = [next(batches) for _ in range(len(view) // 4)]
    with_actions = np.concatenate([(b["actions"] >= 0).any(axis=1) for b in epoch])
    # An epoch is a permutation of the view: as many windows with a known action as the view
    # holds (a labelled episode's last window may hold none: it starts at the final frame).
    (record,) = task.train_operations
    expected = [(record.map(view[i])["actions"] >= 0).any() for i in range(len(view))]
    assert with_actions.sum() == sum(expected)
    plain = [(record.map(source[i])["actions"] >= 0).any() for i in range(len(source))]
    assert with_actions.mean() > 2 * np.mean(plain)
    bc = _config(
        data_dir,
        tokenizer_workdir="unused",
        **{"wam.label_fraction": 0.1, "wam.behaviour_cloning": True},
    )
    # The BC baseline reads the labelled episodes' windows, each once, and nothing else.
    bc_view = wam_task(bc, tmp_path / "bc")[0].train_source_view(source)
    assert sorted(bc_view[i]["episode"] for i in range(len(bc_view))) == sorted(
        source[i]["episode"] for i in np.flatnonzero(view.labelled_window)
    )
    assert bc_view.labelled_share == 1.0


def test_target_cells_become_the_tokens_that_cover_them():
    cells = np.zeros((2, 8, 8), np.uint8)
    cells[0, 2, 5] = 1
    cells[1, 7, 0] = 1
    cells[1, 0, 1] = 1
    # One token per cell (patch 8 on a 64-pixel frame): the same grid, row-major.
    same = cells_to_tokens(cells, 64, 8)
    np.testing.assert_array_equal(same, cells.reshape(2, 64) > 0)
    # Patch 4: each cell is a 2x2 block of tokens on a 16x16 token grid.
    fine = cells_to_tokens(cells, 64, 4).reshape(2, 16, 16)
    assert fine.sum() == 4 * 3 and fine[0, 4:6, 10:12].all() and fine[1, 14:16, 0:2].all()
    # Patch 16: a token covers 2x2 cells and is a target if any of them is.
    coarse = cells_to_tokens(cells, 64, 16).reshape(2, 4, 4)
    expected = np.zeros((2, 4, 4), bool)
    expected[0, 1, 2] = expected[1, 3, 0] = expected[1, 0, 0] = True
    np.testing.assert_array_equal(coarse, expected)
    with pytest.raises(DataError, match="must both tile"):
        cells_to_tokens(cells, 64, 12)


def test_target_head_reads_targets_from_the_data(data_dir, tmp_path):
    """With the target head, batches carry `targets` at token resolution; data built before
    the field existed is refused with the way out."""
    config = _config(data_dir, tokenizer_workdir="t", **{"wam.model.target_head": True})
    task, vocab = wam_task(config, tmp_path / "w")
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    (record,) = task.train_operations
    element = source[0]
    out = record.map(element)
    np.testing.assert_array_equal(
        out["targets"], cells_to_tokens(element["targets"], 64, TINY["tokenizer.model.patch_size"])
    )
    assert out["targets"][0].any()
    assert "targets" not in WAMRecord(vocab, max_words=12).map(element)
    old = types.SimpleNamespace(fields=frozenset({"video", "actions"}), version="1.0.0")
    system = wam_system_from_config(config, len(vocab))
    with pytest.raises(ConfigError, match="holds version 1.0.0: rebuild it"):
        target_patch_size(config, system, old)
    with pytest.raises(DataError, match="rebuild the data"):
        record.map({k: v for k, v in element.items() if k != "targets"})


def test_ahead_head_reads_ahead_from_the_data(data_dir, tmp_path):
    """With the ahead head, batches carry the stored `ahead` classes (train and eval alike);
    data built before the field existed is refused with the way out."""
    config = _config(data_dir, tokenizer_workdir="t", **{"wam.model.ahead_head": True})
    task, vocab = wam_task(config, tmp_path / "w")
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    element = source[0]
    for (record,) in (task.train_operations, task.eval_operations):
        out = record.map(element)
        np.testing.assert_array_equal(out["ahead"], element["ahead"])
        assert out["ahead"].dtype == np.int32
    assert "ahead" not in WAMRecord(vocab, max_words=12).map(element)
    system = wam_system_from_config(config, len(vocab))
    old = types.SimpleNamespace(fields=frozenset({"video", "targets"}), version="1.5.0")
    with pytest.raises(ConfigError, match="old_dir holds version 1.5.0: rebuild it"):
        ahead_field(system, {data_dir: source, "old_dir": old})
    assert ahead_field(system, {data_dir: source})
    with pytest.raises(DataError, match="`ahead` field of BabyAI data version 1.6.0"):
        task.train_operations[0].map({k: v for k, v in element.items() if k != "ahead"})


def test_a_run_adds_modules_to_a_trained_backbone(runs, data_dir, tmp_path, monkeypatch):
    """From a run without the ahead head and the grid convolution (the presets' options
    since 2026-12-07), a run with them loads every other `wam` parameter as saved and starts
    both from their initialization; without `fresh` a missing module is a mismatch named in
    the error. The run starts from the checkpoint `wam.init_step` names and records it."""
    root = runs[0]
    source = tmp_path / "plain"
    without = {"wam.model.ahead_head": False, "wam.model.grid_conv": False, "wam.num_steps": 8}
    train_wam(
        _config(data_dir, tokenizer_workdir=str(root / "tok"), mesh_shape=(2, 2, 2), **without),
        source,
    )
    config = _config(
        data_dir,
        tokenizer_workdir=str(root / "tok"),
        mesh_shape=(2, 2, 2),
        **{"wam.init_workdir": str(source), "wam.init_step": 4},  # source has 4 and 8
    )
    assert config.wam.model.ahead_head and config.wam.model.grid_conv  # the preset's
    task, _ = wam_task(config, tmp_path / "w")
    system = task.model
    inputs = [jax.numpy.asarray(x) for x in task.example_inputs]
    abstract = jax.eval_shape(
        lambda: nn.meta.unbox(system.init(jax.random.key(0), *inputs)["params"])
    )["wam"]
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=_one_device()), abstract
    )
    with pytest.raises(PretrainedMismatchError, match="ahead_head/kernel: missing from"):
        load_pretrained_params(source, "wam", abstract, group="wam")
    loaded = load_pretrained_params(source, "wam", abstract, group="wam", fresh=ADDABLE_MODULES)
    assert "ahead_head" not in loaded and "grid_conv" not in loaded and "policy_head" in loaded
    saved = load_agent(source).params["wam"]
    for name, leaf in jax.tree_util.tree_flatten_with_path(loaded)[0]:
        np.testing.assert_array_equal(leaf, _at(saved, name))

    loaded_steps = []

    def recording_load(workdir, part, abstract, **kwargs):
        if part == "wam":
            loaded_steps.append(kwargs["step"])
        return load_pretrained_params(workdir, part, abstract, **kwargs)

    monkeypatch.setattr(genie_loop, "load_pretrained_params", recording_load)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        summary = train_wam(config, tmp_path / "w")
    assert "ahead_head, grid_conv not in it, kept as initialized" in printed.getvalue()
    assert np.isfinite(summary["train"]["ahead_ce"])
    assert loaded_steps == [4, 4]  # checked, then loaded: step 4, not the newest (8)
    # The run records where it started: step 4 of a run from scratch.
    assert recorded_start(tmp_path / "w") == {
        "init_workdir": str(source),
        "init_step": 4,
        "steps_before": 4,
    }


def _one_device():
    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


@pytest.fixture(scope="module")
def named_file(runs):
    """`wam label` on the run (half the episodes labelled), and the command's last line."""
    out = runs[0] / "named.npz"
    args = ["label", "--workdir", str(runs[0] / "wam"), "--out", str(out), "--batch-size", "16"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(args) == 0
    return out, json.loads(printed.getvalue().splitlines()[-1])


def test_wam_label_names_every_training_window(runs, data_dir, named_file, tmp_path):
    """`wam label`: the run's inverse dynamics names each stored training window's actions,
    as the agent's own inverse query does on that window alone; nothing past a window's last
    frame; a high threshold names nothing; the agreement figures count the stored actions."""
    wam = runs[0] / "wam"
    out, printed = named_file
    assert printed["labeller"] == str(wam)
    named = NamedActions.load(out)
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    assert len(named) == len(source) and named.meta["labeller_label_fraction"] == 0.5
    agent = load_agent(wam)
    stored = np.stack([source[i]["actions"] for i in range(len(source))])
    lengths = np.array([int(source[i]["length"]) for i in range(len(source))])
    for i in [int(np.argmax(lengths == CLIP)), int(np.argmax((lengths > 2) & (lengths < CLIP)))]:
        item, length = source[i], lengths[i]
        row = named.actions_for(item["episode"], item["clip_index"])
        words = agent.encode_missions([item["mission"].decode()])
        alone = agent.infer_actions(words, item["video"][None, :length])[0]
        np.testing.assert_array_equal(row[: length - 1], alone)
        assert (row[length - 1 :] == NO_LABEL).all()
    given = (stored >= 0) & (named.actions_WT >= 0)
    assert named.meta["named_share_all"] == pytest.approx(given.sum() / (stored >= 0).sum())
    right = given & (named.actions_WT == stored)
    assert named.meta["agreement_all"] == pytest.approx(right.sum() / given.sum())
    confusion_RR = np.array(named.meta["confusion_all"])
    assert confusion_RR.shape == (7, 7) and confusion_RR.sum() == given.sum()
    assert np.trace(confusion_RR) == right.sum()
    strict = tmp_path / "strict.npz"
    args = ["label", "--workdir", str(wam), "--out", str(strict), "--threshold", "0.99"]
    assert main(args) == 0
    assert (NamedActions.load(strict).actions_WT == NO_LABEL).all()  # 4 steps: unsure


def test_wam_label_pair_check_keeps_the_names_a_pair_of_frames_repeats(
    runs, data_dir, named_file, tmp_path
):
    """`wam label --pair-check`: a transition keeps its window's name only where its two
    frames, read alone, name the same action; the pair query is the window query on a
    two-frame clip; the share hidden is on record."""
    wam = runs[0] / "wam"
    whole = NamedActions.load(named_file[0])
    out = tmp_path / "pairs.npz"
    args = ["label", "--workdir", str(wam), "--out", str(out), "--pair-check", "--batch-size", "16"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    checked = NamedActions.load(out)
    agent = load_agent(wam)
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    hidden = transitions = 0
    for i in range(len(source)):
        item = source[i]
        length = int(item["length"])
        if length < 2:
            continue
        words = agent.encode_missions([item["mission"].decode()])
        pairs = np.stack([item["video"][t : t + 2] for t in range(length - 1)])
        alone = agent.infer_pair_probs(np.repeat(words, length - 1, axis=0), pairs)
        # The pair query is the window query on each two-frame clip.
        first = agent.infer_action_probs(words, item["video"][None, :2])[0, 0]
        np.testing.assert_allclose(alone[0], first, atol=1e-5)
        named = whole.actions_WT[i, : length - 1]
        kept = checked.actions_WT[i, : length - 1]
        agree = alone.argmax(axis=-1) == named
        np.testing.assert_array_equal(kept, np.where(agree, named, NO_LABEL))
        hidden += int((~agree).sum())
        transitions += length - 1
    assert checked.meta["pair_check"] is True and whole.meta["pair_check"] is False
    assert checked.meta["pair_check_hidden"] == pytest.approx(hidden / transitions)
    with pytest.raises(ValueError, match=r"pairs of \(3, \d+, \d+, 3\) given"):
        agent.infer_pair_probs(words, item["video"][None, :3])


def test_runs_read_named_actions_where_labels_are_hidden(
    runs, data_dir, named_file, tmp_path, capsys
):
    """`config.wam.named_actions`: hidden episodes' windows carry the named actions, labelled
    ones their own, and BC reads every window; runs that could not use them, and labellers
    that saw labels the run hides, are refused."""
    wam = runs[0] / "wam"
    out = named_file[0]
    named = NamedActions.load(out)
    with_named = {"wam.named_actions": str(out), "wam.label_fraction": 0.5}
    bc = {**with_named, "wam.behaviour_cloning": True}
    config = _config(data_dir, tokenizer_workdir="t", **bc)
    task, _ = wam_task(config, tmp_path / "bc")
    assert task.train_source_view is None  # every window carries actions
    (record,) = task.train_operations
    source = open_babyai_split(data_dir, "train", clip_len=CLIP)
    labels = labelled_episodes(int(source.metadata["splits"]["train"]["episodes"]), 0.5, 0)
    for i in range(len(source)):
        element = source[i]
        expected = (
            element["actions"]
            if labels[int(element["episode"])]
            else named.actions_for(element["episode"], element["clip_index"])
        )
        np.testing.assert_array_equal(record.map(element)["actions"], expected)
    for extra, message in [
        ({"wam.label_fraction": 0.1}, "trained on 50% of the labels"),
        ({"wam.label_fraction": 1.0}, "no hidden action would be named"),
        ({"wam.pseudo_label_weight": 1.0}, "pseudo-label pass would find none"),
    ]:
        with pytest.raises(ConfigError, match=message):
            wam_task(_config(data_dir, tokenizer_workdir="t", **{**with_named, **extra}), tmp_path)
    bc_run = tmp_path / "bc_run"
    shutil.copytree(wam, bc_run)
    saved = json.loads((bc_run / "config.json").read_text())
    saved["wam"]["behaviour_cloning"] = True
    (bc_run / "config.json").write_text(json.dumps(saved))
    assert main(["label", "--workdir", str(bc_run), "--out", str(tmp_path / "x.npz")]) == 2
    assert "behaviour cloning run: its action head never learned" in capsys.readouterr().err
