"""BabyAI data for the WAM: expert-bot episodes written by a TFDS builder, read by index.

  play_episode(level, seed)                       -> Episode (frames, actions, mission, success)
  cut_examples(episode, clip_len, ...)            -> windows of clip_len frames, last one padded
  build_babyai(out_dir, level, episodes, ...)     -> dataset dir   (babyai_builder.py)
  open_babyai_split(data_dir, split, ...)         -> ClipSource of dicts of arrays
  read_metadata(dataset_dir)                      -> settings and the bot's figures per split

Examples are `{"video": uint8 [T, 64, 64, 3], "actions": int32 [T] (-1 where none), "length",
"mission", "success", "seed", "episode", "clip_index"}`. Every problem raises `DataError`.
"""

from genie_jax.data.errors import DataError
from wam_jax.data.babyai_builder import build_babyai, open_babyai_split, read_metadata
from wam_jax.data.babyai_env import Episode, cut_examples, play_episode

__all__ = [
    "DataError",
    "Episode",
    "build_babyai",
    "cut_examples",
    "open_babyai_split",
    "play_episode",
    "read_metadata",
]
