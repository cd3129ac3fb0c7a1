"""BabyAI expert-bot data: episodes, windows, the TFDS build, the readers and the CLI."""

import contextlib
import io
import pathlib
import time

import gymnasium as gym
import numpy as np
import pytest
from minigrid.core.constants import COLORS

from genie_jax.data.source import open_split
from wam_jax.cli import main
from wam_jax.data import (
    DataError,
    babyai_env,
    build_babyai,
    cut_examples,
    open_babyai_split,
    play_episode,
    read_metadata,
)
from wam_jax.data.babyai_builder import BabyaiEpisodes

VERSION = str(BabyaiEpisodes.VERSION)

SPLITS = ("train", "validation", "test")
LEVEL = "BabyAI-GoToLocal-v0"
# 10 episodes give 8/1/1 per split over seeds 0..23 / 24..26 / 27..29; windows of 4 frames make
# most episodes span two or more windows. Builds in well under a second.
SETTINGS = {"level": LEVEL, "episodes": 10, "seeds": (0, 30), "clip_len": 4}


@pytest.fixture(scope="module")
def babyai_dir(tmp_path_factory) -> pathlib.Path:
    out_dir = tmp_path_factory.mktemp("babyai")
    build_babyai(out_dir, **SETTINGS)
    return out_dir


def _dataset_dir(data_dir) -> pathlib.Path:
    return pathlib.Path(data_dir) / "babyai_episodes" / "gotolocal_t4" / VERSION


def _read_all(data_dir, split: str) -> list[dict]:
    source = open_babyai_split(data_dir, split, clip_len=SETTINGS["clip_len"])
    return [source[i] for i in range(len(source))]


@pytest.mark.parametrize("level", [LEVEL, "BabyAI-PickupLoc-v0"])
def test_episode_is_a_pure_function_of_level_and_seed(level):
    a, b = play_episode(level, 7), play_episode(level, 7)
    np.testing.assert_array_equal(a.frames_THWC, b.frames_THWC)
    np.testing.assert_array_equal(a.actions_T, b.actions_T)
    assert (a.mission, a.success) == (b.mission, b.success)
    assert a.frames_THWC.shape[1:] == (64, 64, 3) and a.frames_THWC.dtype == np.uint8
    assert len(a.frames_THWC) == len(a.actions_T) + 1
    assert a.actions_T.dtype == np.int32
    assert ((a.actions_T >= 0) & (a.actions_T < babyai_env.NUM_ACTIONS)).all()
    other = play_episode(level, 8)
    assert other.mission != a.mission or not np.array_equal(other.frames_THWC[0], a.frames_THWC[0])


@pytest.mark.parametrize("level, seed", [(LEVEL, 3), (LEVEL, 11), ("BabyAI-PickupLoc-v0", 5)])
def test_stored_actions_replay_to_the_stored_frames(level, seed):
    episode = play_episode(level, seed)
    env = gym.make(level)
    with contextlib.redirect_stdout(io.StringIO()):
        obs, _ = env.reset(seed=seed)
    assert obs["mission"] == episode.mission
    render = env.unwrapped.get_frame
    np.testing.assert_array_equal(render(highlight=False, tile_size=8), episode.frames_THWC[0])
    for t, action in enumerate(episode.actions_T):
        _, reward, terminated, truncated, _ = env.step(int(action))
        frame = render(highlight=False, tile_size=8)
        np.testing.assert_array_equal(frame, episode.frames_THWC[t + 1], err_msg=f"step {t}")
    assert terminated or truncated  # the episode stopped where the env did
    assert (reward > 0) == episode.success


@pytest.mark.parametrize("level", [LEVEL, "BabyAI-PickupLoc-v0"])
def test_expert_noise_takes_random_movements_the_bot_recovers_from(level):
    clean = play_episode(level, 7)
    np.testing.assert_array_equal(clean.expert_actions_T, clean.actions_T)
    episodes = [play_episode(level, seed, expert_noise=0.3) for seed in range(40)]
    again = play_episode(level, 0, expert_noise=0.3)
    np.testing.assert_array_equal(again.actions_T, episodes[0].actions_T)
    np.testing.assert_array_equal(again.frames_THWC, episodes[0].frames_THWC)
    taken = np.concatenate([e.actions_T for e in episodes])
    expert = np.concatenate([e.expert_actions_T for e in episodes])
    changed = taken != expert
    # A noise step (p = 0.3) draws one of 3 movements: 2 in 3 differ from the bot's choice.
    assert 0.1 < changed.mean() < 0.3
    assert np.isin(taken[changed], babyai_env.NOISE_ACTIONS).all()
    # Off its path the bot plans a way back: the missions still get done.
    assert np.mean([e.success for e in episodes]) >= 0.9
    assert all(e.bot_error is None for e in episodes)


def _replayed(seed: int, actions_T: np.ndarray):
    """A fresh GoToLocal env reset to `seed` after each of `actions_T`: (world, frame) pairs."""
    env = gym.make(LEVEL)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    for action in actions_T:
        env.step(int(action))
        yield env.unwrapped, env.unwrapped.get_frame(highlight=False, tile_size=8)
    env.close()


@pytest.mark.parametrize("seed", [2, 11])
def test_noisy_actions_replay_to_the_stored_frames(seed):
    episode = play_episode(LEVEL, seed, expert_noise=0.5)
    assert (episode.actions_T != episode.expert_actions_T).any()
    for t, (_, frame) in enumerate(_replayed(seed, episode.actions_T)):
        np.testing.assert_array_equal(frame, episode.frames_THWC[t + 1], err_msg=f"step {t}")
    (example, *_) = cut_examples(episode, 4, seed=seed, episode_index=0)
    np.testing.assert_array_equal(example["expert_actions"], episode.expert_actions_T[:4])


def _facing_a_blocker(world) -> bool:
    """The agent faces an object it could carry that the mission does not name."""
    named = babyai_env.named_object_cells(world)
    x, y = world.front_pos
    cell = world.grid.get(int(x), int(y))
    return cell is not None and cell.can_pickup() and not named[y, x]


def test_blocker_noise_meets_objects_the_mission_does_not_name():
    """Every step that blocker noise changed leaves the agent facing such an object (a turn
    towards it, or a forward into it that changes nothing); the bot still completes the
    missions, and its choices from those states are recorded."""
    seeds = range(60)
    episodes = [play_episode(LEVEL, seed, blocker_noise=0.3) for seed in seeds]
    again = play_episode(LEVEL, 5, blocker_noise=0.3)
    np.testing.assert_array_equal(again.actions_T, episodes[5].actions_T)
    met, expert_after = 0, []
    for seed, episode in zip(seeds, episodes, strict=True):
        for t, (world, frame) in enumerate(_replayed(seed, episode.actions_T)):
            action = episode.actions_T[t]
            np.testing.assert_array_equal(frame, episode.frames_THWC[t + 1], err_msg=f"{seed}/{t}")
            if action == episode.expert_actions_T[t]:
                continue
            met += 1
            assert action in (babyai_env.LEFT, babyai_env.RIGHT, babyai_env.FORWARD)
            assert _facing_a_blocker(world), f"seed {seed}, step {t}"
            if action == babyai_env.FORWARD:  # blocked: nothing moved
                np.testing.assert_array_equal(frame, episode.frames_THWC[t])
            if t + 1 < len(episode.actions_T):
                expert_after.append(int(episode.expert_actions_T[t + 1]))
    assert met >= 20  # about a third of GoToLocal's episodes pass next to a distractor
    # Facing a blocker, the bot never walks on: it turns away or picks the blocker up.
    assert expert_after and babyai_env.FORWARD not in expert_after
    assert np.mean([e.success for e in episodes]) >= 0.9
    # Without it, the same seeds play the bot's own episodes.
    clean = play_episode(LEVEL, 5, blocker_noise=0.0)
    np.testing.assert_array_equal(clean.actions_T, clean.expert_actions_T)


def test_full_view_expert_labels_depend_on_the_state_alone():
    """The `full_view` expert names, in every state it or the noise led to, what a fresh bot
    that sees the whole room would do there, and its episodes complete the mission; some of
    the `bot` expert's labels are not that (they depend on what it has seen so far)."""
    seeds = range(30)
    noisy = {
        expert: [play_episode(LEVEL, s, expert=expert, expert_noise=0.3) for s in seeds]
        for expert in babyai_env.EXPERTS
    }
    differ = {expert: 0 for expert in babyai_env.EXPERTS}
    for expert, episodes in noisy.items():
        for seed, episode in zip(seeds, episodes, strict=True):
            env = gym.make(LEVEL)
            with contextlib.redirect_stdout(io.StringIO()):
                env.reset(seed=seed)
            for action, label in zip(episode.actions_T, episode.expert_actions_T, strict=True):
                differ[expert] += babyai_env.full_view_action(env.unwrapped) != label
                env.step(int(action))
            env.close()
    assert differ["full_view"] == 0
    assert differ["bot"] >= 1  # 4 of 259 on these seeds; 4% of the labels over 200 seeds
    assert all(e.success and e.bot_error is None for e in noisy["full_view"])
    # Without noise the expert's labels are its actions, and the episodes replay.
    clean = play_episode(LEVEL, 4, expert="full_view")
    np.testing.assert_array_equal(clean.actions_T, clean.expert_actions_T)
    again = play_episode(LEVEL, 4, expert="full_view")
    np.testing.assert_array_equal(again.frames_THWC, clean.frames_THWC)


def test_bad_expert_noise_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"expert_noise must be in \[0, 1\), got 1.5"):
        build_babyai(tmp_path, LEVEL, episodes=5, expert_noise=1.5)
    with pytest.raises(DataError, match="expert_noise must be in"):
        play_episode(LEVEL, 0, expert_noise=-0.1)
    with pytest.raises(DataError, match=r"blocker_noise must be in \[0, 1\), got 1.0"):
        build_babyai(tmp_path, LEVEL, episodes=5, blocker_noise=1.0)
    with pytest.raises(DataError, match="blocker_noise must be in"):
        play_episode(LEVEL, 0, blocker_noise=-0.5)
    with pytest.raises(DataError, match=r"unknown expert 'oracle'; choose from \('bot', "):
        build_babyai(tmp_path, LEVEL, episodes=5, expert="oracle")
    with pytest.raises(DataError, match="unknown expert 'Bot'"):
        play_episode(LEVEL, 0, expert="Bot")
    assert not any(tmp_path.iterdir())


def _cells_of(world, color: str, kind: str) -> set[tuple[int, int]]:
    """(row, column) of every cell holding a `color` `kind` object."""
    return {
        (y, x)
        for x in range(world.width)
        for y in range(world.height)
        if (obj := world.grid.get(x, y)) is not None and (obj.color, obj.type) == (color, kind)
    }


@pytest.mark.parametrize("seed", [3, 11, 42])
def test_targets_mark_the_objects_the_mission_names(seed):
    """GoToLocal: "go to the/a COLOR TYPE" -> the cells of every such object, in every frame
    (nothing moves), checked against the grid read by hand."""
    episode = play_episode(LEVEL, seed)
    *_, color, kind = episode.mission.split()
    env = gym.make(LEVEL)
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    expected = _cells_of(env.unwrapped, color, kind)
    assert expected  # the mission names an object of the room
    assert episode.targets_TGG.shape == (len(episode.frames_THWC), 8, 8)
    for t, cells_GG in enumerate(episode.targets_TGG):
        assert {tuple(c) for c in np.argwhere(cells_GG)} == expected, t
        # The rendered cell shows the named colour.
        for y, x in expected:
            patch = episode.frames_THWC[t, 8 * y : 8 * y + 8, 8 * x : 8 * x + 8].reshape(-1, 3)
            assert (np.abs(patch.astype(int) - COLORS[color]).sum(axis=1) == 0).any()


@pytest.mark.parametrize("blocker_noise", [0.0, 0.5])
def test_ahead_says_whether_forward_moves(blocker_noise):
    """`ahead` holds a class per frame, and a FORWARD from a frame whose cell ahead is free
    moves the agent (the frame changes), from any other class it changes nothing; the last
    FORWARD of a won GoTo episode faces the named object. Blocker noise puts forwards into
    objects in the data."""
    classes = {}
    for seed in range(12):
        episode = play_episode(LEVEL, seed, blocker_noise=blocker_noise)
        ahead_T = episode.ahead_T
        assert ahead_T.shape == (len(episode.frames_THWC),) and ahead_T.dtype == np.uint8
        assert ahead_T.max() < len(babyai_env.AHEAD_CLASSES)
        for t, action in enumerate(episode.actions_T):
            if action != babyai_env.FORWARD:
                continue
            moved = not np.array_equal(episode.frames_THWC[t], episode.frames_THWC[t + 1])
            assert moved == (ahead_T[t] == babyai_env.AHEAD_FREE), (seed, t)
            classes[int(ahead_T[t])] = classes.get(int(ahead_T[t]), 0) + 1
        if episode.success:  # GoTo is won facing the named object
            assert ahead_T[-1] == babyai_env.AHEAD_NAMED
    assert classes.get(babyai_env.AHEAD_FREE, 0) > 10
    if blocker_noise:
        assert classes.get(babyai_env.AHEAD_OBJECT, 0) > 0


def test_a_picked_up_object_leaves_the_targets():
    """PickupLoc: the object the bot picks up is carried, on no cell, in the last frame."""
    episode = play_episode("BabyAI-PickupLoc-v0", 5)
    assert episode.success and episode.actions_T[-1] == 3  # pickup
    first, last = episode.targets_TGG[0].sum(), episode.targets_TGG[-1].sum()
    assert first >= 1 and last == first - 1
    np.testing.assert_array_equal(episode.targets_TGG[-2], episode.targets_TGG[0])


def test_bot_solves_gotolocal():
    episodes = [play_episode(LEVEL, seed) for seed in range(100, 120)]
    # Measured: the bot solved all of 2000 GoToLocal seeds, in 5.3 actions on average.
    assert all(e.success and e.bot_error is None for e in episodes)
    assert 2 < np.mean([len(e.actions_T) for e in episodes]) < 10


def test_bot_error_ends_the_episode_unsuccessfully(monkeypatch):
    from minigrid.utils.baby_ai_bot import BabyAIBot

    replan = BabyAIBot.replan
    calls = []

    def failing_replan(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise AssertionError("Forward cell is empty")
        return replan(self, *args, **kwargs)

    monkeypatch.setattr(BabyAIBot, "replan", failing_replan)
    episode = play_episode(LEVEL, 3)  # needs more than 2 actions unharmed
    assert len(episode.actions_T) == 2 and len(episode.frames_THWC) == 3
    assert not episode.success
    assert "Forward cell is empty" in episode.bot_error


@pytest.mark.parametrize("clip_len", [1, 3, 4, 100])
def test_windows_cover_the_episode_and_pad_with_its_last_frame(clip_len):
    episode = play_episode(LEVEL, 3)
    frames_THWC, actions_T = episode.frames_THWC, episode.actions_T
    examples = cut_examples(episode, clip_len, seed=3, episode_index=9)
    assert len(examples) == -(-len(frames_THWC) // clip_len)  # the tail is padded, not dropped
    assert [x["clip_index"] for x in examples] == list(range(len(examples)))
    assert all(x["seed"] == 3 and x["episode"] == 9 for x in examples)
    lengths = [x["length"] for x in examples]
    assert sum(lengths) == len(frames_THWC) and all(n == clip_len for n in lengths[:-1])
    video_THWC = np.concatenate([x["video"] for x in examples])
    actions = np.concatenate([x["actions"] for x in examples])
    assert video_THWC.shape == (len(examples) * clip_len, 64, 64, 3)
    assert actions.dtype == np.int32 and actions.shape == (len(examples) * clip_len,)
    n = len(frames_THWC)
    np.testing.assert_array_equal(video_THWC[:n], frames_THWC)
    np.testing.assert_array_equal(
        video_THWC[n:], np.broadcast_to(frames_THWC[-1], video_THWC[n:].shape)
    )
    # An action for every frame that has a successor; -1 from the final valid frame on.
    np.testing.assert_array_equal(actions[: n - 1], actions_T)
    assert (actions[n - 1 :] == babyai_env.NO_ACTION).all()


def test_short_episode_gives_exactly_one_example():
    episode = play_episode(LEVEL, 3)
    assert len(episode.frames_THWC) < 16
    (example,) = cut_examples(episode, 16, seed=3, episode_index=0)
    assert example["length"] == len(episode.frames_THWC)
    assert example["mission"] == episode.mission and example["success"] == 1


@pytest.mark.parametrize(
    "level, phrase",
    [
        ("BabyAI-NoSuchLevel-v0", "must be a registered BabyAI level"),
        ("MiniGrid-Empty-8x8-v0", "must be a registered BabyAI level"),
        ("BabyAI-GoTo-v0", r"22x22 grid, which does not tile a 64x64 frame"),
    ],
)
def test_bad_levels_are_refused(tmp_path, level, phrase):
    with pytest.raises(DataError, match=phrase):
        build_babyai(tmp_path, level, episodes=5)
    assert not any(tmp_path.iterdir())


def test_bad_build_arguments(tmp_path):
    with pytest.raises(DataError, match="clip_len must be >= 1"):
        build_babyai(tmp_path, LEVEL, episodes=5, clip_len=0)
    with pytest.raises(DataError, match="at least 3 seeds"):
        build_babyai(tmp_path, LEVEL, episodes=5, seeds=(4, 5))


def test_splits_use_disjoint_declared_seeds(babyai_dir):
    metadata = read_metadata(_dataset_dir(babyai_dir))
    assert {k: metadata[k] for k in ("level", "clip_len", "frame_size", "episodes")} == {
        "level": LEVEL,
        "clip_len": 4,
        "frame_size": 64,
        "episodes": 10,
    }
    assert metadata["seeds"] == [0, 30]
    seeds = {}
    for split in SPLITS:
        records = _read_all(babyai_dir, split)
        plan = metadata["splits"][split]
        seeds[split] = {int(r["seed"]) for r in records}
        assert all(plan["seed_start"] <= s < plan["seed_stop"] for s in seeds[split]), split
        assert len({int(r["episode"]) for r in records}) == plan["episodes"]
    assert not seeds["train"] & seeds["validation"]
    assert not seeds["train"] & seeds["test"]
    assert not seeds["validation"] & seeds["test"]


def test_metadata_holds_the_bot_figures_measured_while_building(babyai_dir):
    bot = read_metadata(_dataset_dir(babyai_dir))["bot"]
    assert set(bot) == set(SPLITS)
    for split in SPLITS:
        records = _read_all(babyai_dir, split)
        # Per episode: its success flag, and its frame count summed over its windows.
        success, frames = {}, {}
        for r in records:
            success[int(r["episode"])] = int(r["success"])
            frames[int(r["episode"])] = frames.get(int(r["episode"]), 0) + int(r["length"])
        mean_actions = np.mean([n - 1 for n in frames.values()])
        assert bot[split]["success_rate"] == pytest.approx(np.mean(list(success.values())))
        assert bot[split]["mean_length"] == pytest.approx(mean_actions)
        assert bot[split]["bot_errors"] == 0
        assert bot[split]["noise_changed_share"] == 0.0  # built without expert noise
    assert read_metadata(_dataset_dir(babyai_dir))["expert"] == "bot"


def test_records_read_back_with_their_shapes_and_contents(babyai_dir):
    records = _read_all(babyai_dir, "train")
    assert len(records) > 8  # windows of 4 frames: most episodes give more than one
    for r in records:
        assert r["video"].shape == (4, 64, 64, 3) and r["video"].dtype == np.uint8
        assert r["actions"].shape == (4,) and r["actions"].dtype == np.int32
        assert 1 <= r["length"] <= 4
        valid = r["actions"][r["actions"] >= 0]
        assert (valid < babyai_env.NUM_ACTIONS).all()
        assert r["mission"].decode().startswith("go to ")
    # Each record is exactly the window of a freshly played episode.
    r = records[0]
    window = cut_examples(play_episode(LEVEL, r["seed"]), 4, seed=r["seed"], episode_index=0)
    expected = window[r["clip_index"]]
    np.testing.assert_array_equal(r["video"], expected["video"])
    np.testing.assert_array_equal(r["actions"], expected["actions"])
    np.testing.assert_array_equal(r["expert_actions"], expected["expert_actions"])
    np.testing.assert_array_equal(r["expert_actions"], r["actions"])  # no noise in this build
    np.testing.assert_array_equal(r["targets"], expected["targets"])
    assert r["targets"].shape == (4, 8, 8) and r["targets"].dtype == np.uint8
    np.testing.assert_array_equal(r["ahead"], expected["ahead"])
    assert r["ahead"].shape == (4,) and r["ahead"].dtype == np.uint8
    assert r["length"] == expected["length"]


def test_genie_reader_opens_the_build_by_dataset_name(babyai_dir):
    source = open_split(babyai_dir, "test", clip_len=4, frame_size=64, dataset="babyai_episodes")
    assert len(source) >= 1 and source[0]["video"].shape == (4, 64, 64, 3)
    assert source.metadata["level"] == LEVEL


def test_open_babyai_split_checks_level_and_clip_len(babyai_dir):
    source = open_babyai_split(babyai_dir, "validation", clip_len=4, level=LEVEL)
    assert len(source) >= 1
    with pytest.raises(DataError, match="clips of 4 frames"):
        open_babyai_split(babyai_dir, "validation", clip_len=16)
    with pytest.raises(DataError, match="played on BabyAI-GoToLocal-v0, not BabyAI-PickupLoc-v0"):
        open_babyai_split(
            _dataset_dir(babyai_dir), "train", clip_len=4, level="BabyAI-PickupLoc-v0"
        )


def test_rebuilding_a_finished_dataset_does_nothing(babyai_dir, capsys):
    info = _dataset_dir(babyai_dir) / "dataset_info.json"
    mtime = info.stat().st_mtime_ns
    start = time.monotonic()
    assert build_babyai(babyai_dir, **SETTINGS) == _dataset_dir(babyai_dir)
    assert time.monotonic() - start < 2.0
    assert info.stat().st_mtime_ns == mtime
    assert "already built" in capsys.readouterr().out
    assert not (babyai_dir / "downloads").exists()


def test_rebuilding_with_other_settings_is_refused(babyai_dir):
    with pytest.raises(DataError, match="built with other settings.*episodes 10 not 11"):
        build_babyai(babyai_dir, **dict(SETTINGS, episodes=11))
    with pytest.raises(DataError, match="built with other settings.*seeds"):
        build_babyai(babyai_dir, **dict(SETTINGS, seeds=(0, 40)))
    with pytest.raises(DataError, match="built with other settings.*expert_noise 0.0 not 0.2"):
        build_babyai(babyai_dir, **dict(SETTINGS, expert_noise=0.2))
    with pytest.raises(DataError, match="built with other settings.*blocker_noise 0.0 not 0.3"):
        build_babyai(babyai_dir, **dict(SETTINGS, blocker_noise=0.3))
    with pytest.raises(DataError, match="built with other settings.*expert bot not full_view"):
        build_babyai(babyai_dir, **dict(SETTINGS, expert="full_view"))


def test_stale_unfinished_build_is_removed(tmp_path):
    stale = tmp_path / "babyai_episodes" / "pickuploc_t16" / f"incomplete.ABC123_{VERSION}"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left by a killed build")
    with pytest.raises(DataError, match="unfinished babyai_episodes build"):
        open_babyai_split(tmp_path, "train")
    path = build_babyai(tmp_path, "BabyAI-PickupLoc-v0", episodes=3, seeds=(0, 3))
    assert not stale.exists()
    assert len(open_babyai_split(path, "train")) == 1  # 1 episode, shorter than 16 frames
    assert open_babyai_split(tmp_path, "test")[0]["mission"].decode().startswith("pick up ")


def test_cli_writes_a_dataset_and_reports_the_bot(tmp_path, capsys):
    argv = ["data", "babyai", "--out", str(tmp_path), "--episodes", "3", "--seeds", "50:53"]
    assert main([*argv, "--level", LEVEL, "--clip-len", "8", "--expert", "full_view"]) == 0
    out = capsys.readouterr().out
    dataset_dir = tmp_path / "babyai_episodes" / "gotolocal_t8" / VERSION
    assert f"dataset: {dataset_dir}" in out
    assert read_metadata(dataset_dir)["expert"] == "full_view"
    for split in SPLITS:
        assert f"{split}: bot success 1.000, mean length" in out
    assert len(open_babyai_split(tmp_path, "train", clip_len=8)) >= 1


def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "babyai",
                "--out",
                str(tmp_path),
                "--episodes",
                "3",
                "--level",
                "BabyAI-Nope-v0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("wam data: error: unknown level 'BabyAI-Nope-v0'")
    assert "\n" not in err
