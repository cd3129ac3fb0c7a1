"""On-policy (DAgger) data: a trained WAM plays BabyAI, the full-view expert labels every state
it reaches, the episodes are written as a TFDS build of their own, and a run at 100% labels
trains on the expert's windows and these together."""

import contextlib
import io
import json

import numpy as np
import pytest

from genie_jax.config_loading import ConfigError
from genie_jax.data.source import open_config_split
from genie_jax.train.checkpoint import CheckpointNotFoundError
from tests.wam.tiny_runs import CLIP, build_tiny_data, tiny_run_config, train_tiny_runs
from wam_jax.cli import main
from wam_jax.data import DataError, build_babyai, open_babyai_split, read_metadata
from wam_jax.data.aggregate import AggregatedSource
from wam_jax.data.babyai_builder import BabyaiEpisodes
from wam_jax.data.babyai_env import (
    NO_ACTION,
    expert_action,
    make_env,
    named_object_cells,
)
from wam_jax.data.vocab import UnknownWordError, Vocabulary
from wam_jax.task import train_wam, wam_task

pytestmark = pytest.mark.long_running(seconds=120)  # see tests/conftest.py

LEVEL = "BabyAI-GoToLocal-v0"
SEEDS = (0, 30)  # train 0:24, validation 24:27, test 27:30; the expert data's train range


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return build_tiny_data(tmp_path_factory.mktemp("babyai"))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    return train_tiny_runs(data_dir, tmp_path_factory.mktemp("runs"))[0]


def _build(out, run, **overrides):
    """An on-policy build of `run`'s policy (`overrides` replace the settings, `actor` too)."""
    settings = dict(episodes=3, seeds=SEEDS, clip_len=CLIP, expert="full_view", actor=str(run))
    return build_babyai(out, LEVEL, **{**settings, **overrides})


@pytest.fixture(scope="module")
def played(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("played")
    _build(out, runs / "wam")
    return out


def _episodes(data_dir, split: str) -> list[dict]:
    """The windows of each episode of an on-policy split, joined back (frames up to the
    episode's end)."""
    source = open_babyai_split(data_dir, split, clip_len=CLIP, on_policy=True)
    by_episode: dict[int, list] = {}
    for i in range(len(source)):
        item = source[i]
        by_episode.setdefault(int(item["episode"]), []).append(item)
    joined = []
    for windows in by_episode.values():
        windows.sort(key=lambda w: int(w["clip_index"]))
        frames = sum(int(w["length"]) for w in windows)
        joined.append(
            {
                "seed": int(windows[0]["seed"]),
                "mission": windows[0]["mission"].decode(),
                "success": int(windows[0]["success"]),
                "video": np.concatenate([w["video"] for w in windows])[:frames],
                "targets": np.concatenate([w["targets"] for w in windows])[:frames],
                "actions": np.concatenate([w["actions"] for w in windows])[: frames - 1],
                "expert": np.concatenate([w["expert_actions"] for w in windows])[: frames - 1],
            }
        )
    return joined


def test_the_policys_episodes_replay_and_every_state_has_the_experts_choice(played):
    """Replaying the stored actions from the seed gives the stored frames and cells, and the
    stored label of every state is what the full-view expert chooses there."""
    version = str(BabyaiEpisodes.VERSION)
    metadata = read_metadata(next((played / "babyai_episodes").iterdir()) / version)
    assert metadata["actor"].endswith("wam") and metadata["actor_step"] == 4
    assert metadata["expert"] == "full_view" and metadata["actor_temperature"] == 1.0
    differs = 0
    for split in ("train", "validation", "test"):
        (episode,) = _episodes(played, split)
        env = make_env(LEVEL)
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = env.reset(seed=episode["seed"])
        assert obs["mission"] == episode["mission"]
        reward = 0.0
        for t, action in enumerate(episode["actions"]):
            world = env.unwrapped
            np.testing.assert_array_equal(
                world.get_frame(highlight=False, tile_size=8), episode["video"][t]
            )
            np.testing.assert_array_equal(named_object_cells(world), episode["targets"][t])
            expert = expert_action(env)
            assert episode["expert"][t] == (NO_ACTION if expert is None else expert), t
            differs += int(action != episode["expert"][t])
            _, reward, _, _, _ = env.step(int(action))
        env.close()
        assert episode["success"] == int(reward > 0)
        assert metadata["bot"][split]["mean_length"] == len(episode["actions"])
    assert differs > 0  # a four-step policy is not the expert: the labels are its own


def test_the_same_run_step_and_seeds_play_the_same_episodes(runs, played, tmp_path):
    _build(tmp_path, runs / "wam")
    for split in ("train", "test"):
        (first,), (again,) = _episodes(played, split), _episodes(tmp_path, split)
        np.testing.assert_array_equal(first["actions"], again["actions"])


def test_on_policy_builds_refuse_what_they_cannot_do(runs, data_dir, played, tmp_path, capsys):
    actor = runs / "wam"
    for overrides, error, message in [
        ({"expert": "bot"}, DataError, "labelled by the full_view expert"),
        ({"expert_noise": 0.2}, DataError, "leave them at 0"),
        ({"actor_temperature": -1.0}, DataError, "actor_temperature must be >= 0"),
        ({"actor_step": 3}, CheckpointNotFoundError, "no checkpoint at step 3 .it has 4."),
        ({"actor": str(tmp_path / "none")}, CheckpointNotFoundError, "holds no checkpoint"),
    ]:
        with pytest.raises(error, match=message):
            _build(tmp_path / "a", actor, **overrides)
    with pytest.raises(DataError, match="holds expert data .* directory of its own"):
        _build(data_dir, actor)  # into the expert build's directory
    with pytest.raises(DataError, match="holds on-policy data .* directory of its own"):
        build_babyai(played, LEVEL, episodes=3, seeds=SEEDS, clip_len=CLIP)
    args = ["data", "babyai", "--out", str(tmp_path / "c"), "--episodes", "3"]
    assert main([*args, "--actor", str(actor), "--expert", "bot"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def _dagger_config(data_dir, runs, played, **overrides):
    return tiny_run_config(
        data_dir,
        tokenizer_workdir=str(runs / "tok"),
        **{
            "wam.label_fraction": 1.0,
            "wam.behaviour_cloning": True,
            "wam.on_policy_data_dir": str(played),
            **overrides,
        },
    )


def test_a_run_trains_on_the_experts_windows_and_the_policys(data_dir, runs, played, tmp_path):
    config = _dagger_config(data_dir, runs, played, mesh_shape=(2, 2, 2))
    task, vocab = wam_task(config, tmp_path / "w")
    expert = open_config_split(config, "train")
    union = task.train_source_view(expert)
    on_policy = open_babyai_split(played, "train", clip_len=CLIP, on_policy=True)
    assert isinstance(union, AggregatedSource) and len(union) == len(expert) + len(on_policy)
    (record,) = task.train_operations
    for i in range(len(on_policy)):
        element = on_policy[i]
        out = record.map(union[len(expert) + i])
        # The policy's actions are the history; the expert's choices are what it learns.
        np.testing.assert_array_equal(out["actions"], element["actions"])
        np.testing.assert_array_equal(out["policy_actions"], element["expert_actions"])
    summary = train_wam(config, tmp_path / "dagger")
    assert summary["step"] == 4 and np.isfinite(summary["train"]["loss"])
    saved = json.loads((tmp_path / "dagger" / "config.json").read_text())
    assert saved["wam"]["on_policy_data_dir"] == str(played)


def test_on_policy_data_is_checked_against_the_run(data_dir, runs, played, tmp_path):
    for overrides, message in [
        ({"wam.label_fraction": 0.5}, "runs that keep every label"),
        ({"wam.on_policy_data_dir": data_dir}, "holds the expert's episodes, not a policy's"),
    ]:
        with pytest.raises(ConfigError, match=message):
            wam_task(_dagger_config(data_dir, runs, played, **overrides), tmp_path / "x")
    held_out = tmp_path / "held_out"  # played on the expert data's validation seeds
    _build(held_out, runs / "wam", seeds=(80_000, 80_030))
    with pytest.raises(ConfigError, match="meet the validation seeds 80000:90000"):
        wam_task(_dagger_config(data_dir, runs, held_out), tmp_path / "y")
    init = tmp_path / "init"  # a vocabulary without this level's words
    init.mkdir()
    Vocabulary(["go", "to", "the", "dragon"]).save(init / "vocab.json")
    with pytest.raises(UnknownWordError, match="never saw in training"):
        wam_task(
            _dagger_config(data_dir, runs, played, **{"wam.init_workdir": str(init)}),
            tmp_path / "z",
        )


def test_the_union_reads_each_source_in_turn():
    class Fake:
        def __init__(self, name, n):
            self.name, self.n = name, n
            self.metadata, self.fields, self.version = {"from": name}, frozenset({"a", name}), "1"

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            assert 0 <= i < self.n
            return {"from": self.name, "i": i}

        def __repr__(self):
            return f"Fake({self.name})"

    union = AggregatedSource(Fake("expert", 3), Fake("policy", 2))
    assert [union[i] for i in range(5)] == [
        {"from": "expert", "i": 0},
        {"from": "expert", "i": 1},
        {"from": "expert", "i": 2},
        {"from": "policy", "i": 0},
        {"from": "policy", "i": 1},
    ]
    with pytest.raises(IndexError):
        union[5]
    assert union.metadata == {"from": "expert"} and union.fields == {"a"}
    assert repr(union) == "AggregatedSource(Fake(expert) + Fake(policy))"
