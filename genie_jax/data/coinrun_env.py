"""CoinRun episodes from procgen under a uniform random policy, cut into fixed-length clips.

The data of the CoinRun case study in Genie (Bruce et al., 2024): CoinRun played by a random
policy, hard mode, 64x64 frames. One episode here is one life on one level
seed: from reset until procgen signals the episode ended (`first`) or `max_steps` frames.

Everything is a pure function of `(level_seed, episode)`: the action sampler and procgen's own
RNG are both seeded from that pair, so any worker process can regenerate any episode.
"""

import contextlib
import dataclasses
import io
import warnings

import numpy as np

NUM_ACTIONS = 15  # procgen's full discrete action set
FRAME_SIZE = 64  # procgen renders 64x64 RGB observations


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to play: the level seed and the episode's index within its split."""

    level_seed: int
    episode: int


def _make_env(level_seed: int, rand_seed: int):
    # The installed gym prints an "unmaintained" notice to stderr on import, and emits
    # deprecation warnings; neither concerns us, and they would repeat in every worker.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        from procgen import ProcgenGym3Env

    return ProcgenGym3Env(
        num=1,
        env_name="coinrun",
        distribution_mode="hard",
        start_level=level_seed,
        num_levels=1,
        rand_seed=rand_seed,
    )


def rollout(spec: EpisodeSpec, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Plays one episode with uniform random actions.

    Returns:
      frames `[T, 64, 64, 3]` uint8 and actions `[T]` int32 with `T <= max_steps`, where
      `actions[t]` moves `frames[t]` to the next frame. The last action is the one that ended
      the episode (or the one taken after the cap); its result is not stored.
    """
    seq = np.random.SeedSequence([spec.level_seed, spec.episode])
    # procgen wants a non-negative int32 seed.
    rand_seed = int(seq.generate_state(1)[0] & 0x7FFFFFFF)
    rng = np.random.default_rng(seq)
    env = _make_env(spec.level_seed, rand_seed)
    try:
        frames, actions = [], []
        _, obs, _ = env.observe()
        while len(frames) < max_steps:
            action = int(rng.integers(NUM_ACTIONS))
            frames.append(obs["rgb"][0].copy())
            actions.append(action)
            env.act(np.array([action]))
            _, obs, first = env.observe()
            # After the step that ends an episode, procgen has already reset: `obs` is the
            # first frame of the next life and must not join this clip.
            if first[0]:
                break
    finally:
        env.close()
    return np.stack(frames), np.asarray(actions, np.int32)


def episode_clips(spec: EpisodeSpec, clip_len: int, max_steps: int) -> list[dict[str, object]]:
    """Plays `spec` and cuts it into non-overlapping clips of `clip_len` frames.

    The tail shorter than `clip_len` is dropped, so an episode shorter than one clip gives no
    clips. Clips never cross a reset because an episode stops at the first reset.
    """
    frames_THWC, actions_T = rollout(spec, max_steps)
    num_clips = len(frames_THWC) // clip_len
    clips = []
    for c in range(num_clips):
        window = slice(c * clip_len, (c + 1) * clip_len)
        clips.append(
            {
                "video": frames_THWC[window],
                "actions": actions_T[window],
                "level_seed": spec.level_seed,
                "episode": spec.episode,
                "clip_index": c,
            }
        )
    return clips
