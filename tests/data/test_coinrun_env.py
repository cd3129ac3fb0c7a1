"""Episode generation: deterministic per (level, episode), real frames, clips cut in order."""

import numpy as np

from genie_jax.data import coinrun_env
from genie_jax.data.coinrun_env import EpisodeSpec


def test_rollout_is_a_function_of_level_and_episode():
    frames_a, actions_a = coinrun_env.rollout(EpisodeSpec(level_seed=3, episode=0), max_steps=40)
    frames_b, actions_b = coinrun_env.rollout(EpisodeSpec(level_seed=3, episode=0), max_steps=40)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(actions_a, actions_b)

    _, actions_other = coinrun_env.rollout(EpisodeSpec(level_seed=3, episode=1), max_steps=40)
    assert not np.array_equal(actions_a, actions_other)


def test_rollout_frames_and_actions():
    frames_THWC, actions_T = coinrun_env.rollout(EpisodeSpec(level_seed=0, episode=0), 40)
    assert frames_THWC.shape == (40, 64, 64, 3) and frames_THWC.dtype == np.uint8
    assert actions_T.shape == (40,) and actions_T.dtype == np.int32
    assert actions_T.min() >= 0 and actions_T.max() < coinrun_env.NUM_ACTIONS
    assert frames_THWC.std() > 10  # a rendered level, not a blank screen
    # Random actions move the agent or the camera, so consecutive frames differ somewhere.
    assert np.any(frames_THWC[1:] != frames_THWC[:-1])


def test_episode_clips_tile_the_episode_and_drop_the_tail():
    spec = EpisodeSpec(level_seed=5, episode=2)
    frames_THWC, actions_T = coinrun_env.rollout(spec, max_steps=30)
    clips = coinrun_env.episode_clips(spec, clip_len=8, max_steps=30)
    assert [c["clip_index"] for c in clips] == [0, 1, 2]  # 30 // 8; the last 6 frames dropped
    np.testing.assert_array_equal(np.concatenate([c["video"] for c in clips]), frames_THWC[:24])
    np.testing.assert_array_equal(np.concatenate([c["actions"] for c in clips]), actions_T[:24])
    assert all(c["level_seed"] == 5 and c["episode"] == 2 for c in clips)
