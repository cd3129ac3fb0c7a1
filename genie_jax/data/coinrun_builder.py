"""TFDS builder that writes CoinRun random-play clips to ArrayRecord files.

Dataset `coinrun_clips`, config `clip{T}` (e.g. `clip16`), version 1.0.0. Each example is one
clip of `T` consecutive frames from one episode (see `coinrun_env`):

  video       uint8 [T, 64, 64, 3]   frames of one life on one level
  actions     int32 [T]              actions[t] moves frame t to frame t+1
  level_seed  int64                  procgen level the clip was played on
  episode     int64                  the episode's index within its split
  clip_index  int64                  position of the clip within its episode

Splits use disjoint level seeds, so validation and test measure generalisation to unseen levels.
The level-seed range `[A, B)` is cut into three contiguous ranges, validation and test each
getting `max(1, (B - A) // 10)` seeds and train the rest. The `N` episodes are divided the same
way (`max(1, N // 10)` each for validation and test, the rest for train). Episode `i` of a split
whose range starts at `s` and holds `n` seeds plays level `s + i % n`, with actions seeded from
`(level, i)`; so a build with more episodes contains every episode of a smaller build.

The generation settings (clip length, frame size, seed ranges, episode counts, step cap) are
stored in the dataset's metadata (`metadata.json`); readers see them as `ClipSource.metadata`.
"""

import dataclasses
import functools
import multiprocessing
import multiprocessing.pool
import pathlib
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from genie_jax.data import coinrun_env
from genie_jax.data.errors import DataError
from genie_jax.data.tfds_build import build_once, clip_features

DATASET_NAME = "coinrun_clips"
SPLITS = ("train", "validation", "test")


def config_name(clip_len: int) -> str:
    """Name of the builder config (and its directory) for clips of `clip_len` frames."""
    return f"clip{clip_len}"


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """The level seeds `[seed_start, seed_stop)` and the number of episodes of one split."""

    seed_start: int
    seed_stop: int
    episodes: int

    def specs(self) -> list[coinrun_env.EpisodeSpec]:
        num_seeds = self.seed_stop - self.seed_start
        return [
            coinrun_env.EpisodeSpec(level_seed=self.seed_start + i % num_seeds, episode=i)
            for i in range(self.episodes)
        ]


def plan_splits(episodes: int, level_seeds: tuple[int, int]) -> dict[str, SplitPlan]:
    """Divides the level seeds and the episodes into train/validation/test (about 80/10/10)."""
    start, stop = level_seeds
    num_seeds = stop - start
    if start < 0 or num_seeds < len(SPLITS):
        raise DataError(
            f"level seeds {start}:{stop} must be non-negative and hold at least "
            f"{len(SPLITS)} seeds (one per split)"
        )
    if episodes < len(SPLITS):
        raise DataError(
            f"episodes={episodes} is too few: each of {', '.join(SPLITS)} needs at least one"
        )
    held_out_seeds = max(1, num_seeds // 10)
    held_out_episodes = max(1, episodes // 10)
    train_stop = stop - 2 * held_out_seeds
    return {
        "train": SplitPlan(start, train_stop, episodes - 2 * held_out_episodes),
        "validation": SplitPlan(train_stop, train_stop + held_out_seeds, held_out_episodes),
        "test": SplitPlan(train_stop + held_out_seeds, stop, held_out_episodes),
    }


@dataclasses.dataclass(eq=False)  # TFDS's BuilderConfig is a mutable dataclass
class CoinrunConfig(tfds.core.BuilderConfig):
    """Generation settings; together they determine the dataset's content exactly."""

    clip_len: int = 16  # frames per example
    frame_size: int = coinrun_env.FRAME_SIZE  # procgen's render size; not configurable
    level_seeds: tuple[int, int] = (0, 10000)  # [start, stop) shared out among the splits
    episodes: int = 1000  # total over all splits
    max_steps: int = 1000  # cap on frames per episode

    def generation_metadata(self) -> dict[str, object]:
        """The settings as JSON-able values, with the per-split seed ranges spelled out."""
        plans = plan_splits(self.episodes, self.level_seeds)
        return {
            "clip_len": self.clip_len,
            "frame_size": self.frame_size,
            "level_seeds": list(self.level_seeds),
            "episodes": self.episodes,
            "max_steps": self.max_steps,
            "splits": {name: dataclasses.asdict(plan) for name, plan in plans.items()},
        }


class CoinrunClips(tfds.core.GeneratorBasedBuilder):
    """CoinRun random-play clips; see the module docstring for the layout and the splits."""

    name = DATASET_NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}
    # TFDS 4.9.10 finds a builder's source file through `importlib_resources`, a package it uses
    # but does not declare (tensorflow/datasets#11212). Naming the file here skips that lookup.
    code_path = pathlib.Path(__file__)

    def __init__(self, *, config: CoinrunConfig, workers: int = 1, **kwargs):
        self._workers = workers  # only affects speed, not content, so not part of the config
        self._pool: multiprocessing.pool.Pool | None = None
        super().__init__(config=config, file_format="array_record", **kwargs)

    def download_and_prepare(self, **kwargs) -> None:
        try:
            super().download_and_prepare(**kwargs)
        finally:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None

    def _map_ordered(self, fn: Callable, items: list) -> Iterator:
        """`map(fn, items)` over the worker processes, results in input order."""
        if self._workers <= 1:
            return map(fn, items)
        if self._pool is None:
            # One pool for all splits: a worker takes seconds to start (imports, procgen's
            # first env). spawn, since procgen and a JAX runtime in the parent are not fork-safe.
            self._pool = multiprocessing.get_context("spawn").Pool(self._workers)
        return self._pool.imap(fn, items)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        t, s = cfg.clip_len, cfg.frame_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"CoinRun (procgen, hard) random-play clips of {t} frames of {s}x{s}.",
            features=tfds.features.FeaturesDict(
                {
                    **clip_features(t, s),
                    "level_seed": tfds.features.Scalar(dtype=np.int64),
                    "episode": tfds.features.Scalar(dtype=np.int64),
                    "clip_index": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            metadata=tfds.core.MetadataDict(cfg.generation_metadata()),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: episodes are played locally
        cfg = self.builder_config
        plans = plan_splits(cfg.episodes, cfg.level_seeds)
        return {name: self._generate_examples(name, plans[name].specs()) for name in SPLITS}

    def _generate_examples(self, split: str, specs: list[coinrun_env.EpisodeSpec]):
        cfg = self.builder_config
        play = functools.partial(
            coinrun_env.episode_clips, clip_len=cfg.clip_len, max_steps=cfg.max_steps
        )
        for clips in tqdm.tqdm(
            self._map_ordered(play, specs),
            total=len(specs),
            desc=f"coinrun {split}",
            unit="episode",
        ):
            for clip in clips:
                yield f"{clip['level_seed']}-{clip['episode']}-{clip['clip_index']}", clip


def build_coinrun(
    out_dir: str | pathlib.Path,
    episodes: int,
    level_seeds: tuple[int, int] = (0, 10000),
    clip_len: int = 16,
    workers: int = 1,
    max_steps: int = 1000,
) -> pathlib.Path:
    """Plays and writes the CoinRun dataset under `out_dir`; returns the dataset directory.

    A finished dataset with the same settings is left as is. A build that dies midway leaves
    only an `incomplete.*` directory, which readers reject and the next build removes.
    """
    if clip_len < 1 or max_steps < clip_len:
        raise DataError(
            f"need 1 <= clip_len <= max_steps, got clip_len={clip_len}, max_steps={max_steps}"
        )
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    config = CoinrunConfig(
        name=config_name(clip_len),
        clip_len=clip_len,
        level_seeds=(int(level_seeds[0]), int(level_seeds[1])),
        episodes=episodes,
        max_steps=max_steps,
    )
    wanted = config.generation_metadata()  # validates the seed range and episode count
    builder = CoinrunClips(config=config, workers=workers, data_dir=str(out_dir))
    # "splits" follows from the other settings, and would only repeat them at length.
    settings = tuple(k for k in wanted if k != "splits")
    return build_once(builder, out_dir, wanted, settings, "CoinRun")
