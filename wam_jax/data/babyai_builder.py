"""TFDS builder that writes BabyAI expert-bot episodes to ArrayRecord files.

Dataset `babyai_episodes`, config `{level}_t{T}` (e.g. `gotolocal_t16` for
`BabyAI-GoToLocal-v0`; `{level}_t{T}_onpolicy` for a build played by a policy, below), version
1.6.0. Each example is one window of `T` frames of one episode
(see `babyai_env`); the last window of an episode is padded with its last frame:

  video       uint8 [T, 64, 64, 3]   full-view renders; frame 0 of window 0 is the reset frame
  actions     int32 [T]              actions[t] moves frame t to t+1; -1 where there is none
  expert_actions int32 [T]           the expert's choice at frame t (differs from actions only
                                     where a noise step replaced it); -1 as actions
  targets     uint8 [T, G, G]        1 on the grid cells (row, column) holding an object the
                                     mission names (`babyai_env.named_object_cells`)
  ahead       uint8 [T]              what the cell in front of the agent holds in frame t, an
                                     index into `babyai_env.AHEAD_CLASSES` (free, wall,
                                     object, named)
  length      int64                  valid (unpadded) frames in this window
  mission     text                   the instruction, e.g. "go to the grey ball"
  success     int64                  1 if the bot completed the mission in this episode
  seed        int64                  the env seed (the layout and mission) of the episode
  episode     int64                  the episode's index within its split
  clip_index  int64                  position of the window within its episode

Splits use disjoint env seeds, divided as for CoinRun (`genie_jax.data.coinrun_builder.
plan_splits`): validation and test each get `max(1, (B - A) // 10)` of the seeds `[A, B)` and
`max(1, N // 10)` of the `N` episodes, train the rest. Episode `i` of a split whose seeds are
`[s, s + n)` plays seed `s + i % n`, so a larger build contains every episode of a smaller one.

With `expert_noise` p > 0 (DART-style data, `babyai_env.play_episode`) each step is a random
movement with probability p and the bot recovers from it; with `blocker_noise` q > 0 a step next
to an object the mission does not name meets it with probability q (`babyai_env.blocker_move`).
Validation and test are played with the same noise. `expert` picks the bot that plays and
labels (`babyai_env.EXPERTS`): `bot`, one bot through the episode as in BabyAI's demonstrations,
or `full_view`, a bot made afresh at every state that sees the whole room.

With `actor` (a `wam train` workdir) the episodes are played by that run's policy instead, at
checkpoint `actor_step` with actions sampled at `actor_temperature`, and the `full_view` expert
labels every state it reaches (DAgger's data, `wam_jax.on_policy`): `actions` are the policy's,
`expert_actions` the expert's, `success` the policy's. Such a build lives in a directory of its
own (a run reads it with `config.wam.on_policy_data_dir` beside its usual `data_dir`), and its
config name ends in `_onpolicy` so that it is never taken for the expert data.

The metadata (`metadata.json`, `ClipSource.metadata` when read) holds the generation settings
(level, clip_len, frame_size, seeds, episodes, expert, expert_noise, blocker_noise, per-split
plans, actor, actor_step, actor_temperature)
and, under `bot`, what was measured while building each split: the bot's success rate, the mean
episode length in actions, how many episodes the bot gave up on, and the share of actions a
noise step changed (with an actor: the policy's success rate and mean length, how many states
the expert could not plan from, and the share of the policy's actions that differ from the
expert's choice). TFDS writes the metadata after every split has been generated, so the
generator fills these in as it finishes a split.
"""

import dataclasses
import pathlib
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from genie_jax.data.coinrun_builder import SPLITS, plan_splits
from genie_jax.data.errors import DataError
from genie_jax.data.source import ClipSource, open_split
from genie_jax.data.tfds_build import build_once, clip_features
from genie_jax.train.checkpoint import resolved_step
from genie_jax.train.workdir import absolute_path
from wam_jax.data import babyai_env

DATASET_NAME = "babyai_episodes"
# The metadata keys that fix the content; a rebuild must match them all.
_SETTINGS = (
    "level",
    "clip_len",
    "frame_size",
    "seeds",
    "episodes",
    "expert",
    "expert_noise",
    "blocker_noise",
    "actor",
    "actor_step",
    "actor_temperature",
)
ON_POLICY_SUFFIX = "_onpolicy"


def config_name(level: str, clip_len: int, on_policy: bool = False) -> str:
    """Name of the builder config (and its directory): `gotolocal_t16`, or
    `gotolocal_t16_onpolicy` for episodes a policy played."""
    name = f"{babyai_env.level_slug(level)}_t{clip_len}"
    return name + ON_POLICY_SUFFIX if on_policy else name


@dataclasses.dataclass(eq=False)  # TFDS's BuilderConfig is a mutable dataclass
class BabyaiConfig(tfds.core.BuilderConfig):
    """Generation settings; together they determine the dataset's content exactly."""

    level: str = "BabyAI-GoToLocal-v0"  # a registered gymnasium id
    clip_len: int = 16  # frames per example
    frame_size: int = babyai_env.FRAME_SIZE  # render size; not configurable from the outside
    grid_size: int = 8  # cells per side of the level's grid (set from the level)
    seeds: tuple[int, int] = (0, 100_000)  # env seeds [start, stop) shared out among the splits
    episodes: int = 1000  # total over all splits
    expert: str = "bot"  # which bot plays and labels, `babyai_env.EXPERTS`
    expert_noise: float = 0.0  # per-step probability of a random movement instead of the bot's
    # per-step probability, next to an object the mission does not name, of a move that meets it
    blocker_noise: float = 0.0
    actor: str = ""  # a `wam train` workdir whose policy plays ("": the expert plays)
    actor_step: int = -1  # its checkpoint (resolved when the build starts)
    actor_temperature: float = 1.0  # its action sampling temperature (0: argmax)

    def generation_metadata(self) -> dict[str, object]:
        """The settings as JSON-able values, with the per-split seed ranges spelled out."""
        plans = plan_splits(self.episodes, self.seeds)
        return {
            "level": self.level,
            "clip_len": self.clip_len,
            "frame_size": self.frame_size,
            "seeds": list(self.seeds),
            "episodes": self.episodes,
            "expert": self.expert,
            "expert_noise": self.expert_noise,
            "blocker_noise": self.blocker_noise,
            "actor": self.actor,
            "actor_step": self.actor_step,
            "actor_temperature": self.actor_temperature,
            "splits": {name: dataclasses.asdict(plan) for name, plan in plans.items()},
            "bot": {},  # per split, filled in by the generator
        }


class BabyaiEpisodes(tfds.core.GeneratorBasedBuilder):
    """BabyAI expert-bot episodes; see the module docstring for the layout and the splits."""

    name = DATASET_NAME
    VERSION = tfds.core.Version("1.6.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Initial release.",
        "1.1.0": "`targets`: the cells of the objects the mission names, per frame.",
        "1.2.0": "`expert_actions` and the `expert_noise` setting (DART-style episodes).",
        "1.3.0": "The `blocker_noise` setting (steps that meet an object the mission does not "
        "name).",
        "1.4.0": "The `expert` setting (`full_view`: a bot made afresh at every state, seeing "
        "the whole room).",
        "1.5.0": "The `actor` setting: episodes played by a trained WAM policy, every state "
        "labelled by the full-view expert (DAgger).",
        "1.6.0": "`ahead`: what the cell in front of the agent holds, per frame.",
    }
    # TFDS 4.9.10 finds a builder's source file through `importlib_resources`, a package it uses
    # but does not declare (tensorflow/datasets#11212). Naming the file here skips that lookup.
    code_path = pathlib.Path(__file__)

    def __init__(self, *, config: BabyaiConfig, **kwargs):
        # No worker pool, unlike CoinRun: an episode takes a few milliseconds to play.
        super().__init__(config=config, file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        t, s = cfg.clip_len, cfg.frame_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{cfg.level} expert-bot episodes in windows of {t} frames of {s}x{s}.",
            features=tfds.features.FeaturesDict(
                {
                    **clip_features(t, s),
                    "expert_actions": tfds.features.Tensor(shape=(t,), dtype=np.int32),
                    "targets": tfds.features.Tensor(
                        shape=(t, cfg.grid_size, cfg.grid_size), dtype=np.uint8, encoding="zlib"
                    ),
                    "ahead": tfds.features.Tensor(shape=(t,), dtype=np.uint8),
                    "length": tfds.features.Scalar(dtype=np.int64),
                    "mission": tfds.features.Text(),
                    "success": tfds.features.Scalar(dtype=np.int64),
                    "seed": tfds.features.Scalar(dtype=np.int64),
                    "episode": tfds.features.Scalar(dtype=np.int64),
                    "clip_index": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            metadata=tfds.core.MetadataDict(cfg.generation_metadata()),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: episodes are played locally
        cfg = self.builder_config
        plans = plan_splits(cfg.episodes, cfg.seeds)
        return {name: self._generate_examples(name, plans[name].specs()) for name in SPLITS}

    def _episodes(self, specs: list):
        """The episodes of `specs`, in order: the expert's, or the actor's (module docstring)."""
        cfg = self.builder_config
        # CoinRun's split plan calls the env seed a level seed.
        seeds = [spec.level_seed for spec in specs]
        if cfg.actor:
            from wam_jax.on_policy import play_on_policy

            yield from play_on_policy(
                cfg.actor,
                cfg.level,
                seeds,
                frame_size=cfg.frame_size,
                step=cfg.actor_step,
                temperature=cfg.actor_temperature,
            )
            return
        for seed in seeds:
            yield babyai_env.play_episode(
                cfg.level,
                seed,
                cfg.frame_size,
                expert_noise=cfg.expert_noise,
                blocker_noise=cfg.blocker_noise,
                expert=cfg.expert,
            )

    def _generate_examples(self, split: str, specs: list):
        cfg = self.builder_config
        successes, lengths, bot_errors, changed = 0, 0, 0, 0
        episodes = self._episodes(specs)
        for spec, episode in zip(
            specs,
            tqdm.tqdm(episodes, total=len(specs), desc=f"babyai {split}", unit="episode"),
            strict=True,
        ):
            seed = spec.level_seed
            successes += episode.success
            lengths += len(episode.actions_T)
            # With an actor: the states the expert could not plan from.
            bot_errors += (
                int(np.sum(episode.expert_actions_T == babyai_env.NO_ACTION))
                if cfg.actor
                else episode.bot_error is not None
            )
            changed += int(np.sum(episode.actions_T != episode.expert_actions_T))
            for example in babyai_env.cut_examples(
                episode, cfg.clip_len, seed=seed, episode_index=spec.episode
            ):
                yield f"{seed}-{spec.episode}-{example['clip_index']}", example
        # Runs once the writer has drained this split, before TFDS writes the metadata.
        self.info.metadata["bot"][split] = {
            "success_rate": successes / len(specs),
            "mean_length": lengths / len(specs),
            "bot_errors": bot_errors,
            "noise_changed_share": changed / max(lengths, 1),
        }


def read_metadata(dataset_dir: str | pathlib.Path) -> dict:
    """The metadata of a finished build: settings, split plans and the bot's figures."""
    # Reading the info back needs no registration, so any build can be read as is.
    return dict(tfds.builder_from_directory(str(dataset_dir)).info.metadata or {})


def build_babyai(
    out_dir: str | pathlib.Path,
    level: str,
    episodes: int,
    seeds: tuple[int, int] = (0, 100_000),
    clip_len: int = 16,
    expert_noise: float = 0.0,
    blocker_noise: float = 0.0,
    expert: str = "bot",
    actor: str = "",
    actor_step: int | None = None,
    actor_temperature: float = 1.0,
) -> pathlib.Path:
    """Plays and writes the BabyAI dataset under `out_dir`; returns the dataset directory.

    With `actor` (a `wam train` workdir; `actor_step` None: its newest checkpoint) that policy
    plays and the `full_view` expert labels (module docstring); `out_dir` must then hold no
    expert build, and an expert build no on-policy one, so a run never reads one for the other.

    A finished dataset with the same settings is left as is; one with other settings under the
    same config name is refused. A build that dies midway leaves only an `incomplete.*`
    directory, which readers reject and the next build removes.
    """
    if clip_len < 1:
        raise DataError(f"clip_len must be >= 1, got {clip_len}")
    if not 0.0 <= expert_noise < 1.0:
        raise DataError(f"expert_noise must be in [0, 1), got {expert_noise}")
    if not 0.0 <= blocker_noise < 1.0:
        raise DataError(f"blocker_noise must be in [0, 1), got {blocker_noise}")
    if expert not in babyai_env.EXPERTS:
        raise DataError(f"unknown expert {expert!r}; choose from {babyai_env.EXPERTS}")
    if actor:
        _check_actor_settings(expert, expert_noise, blocker_noise, actor_temperature)
        actor_step = resolved_step(actor, actor_step)
    _check_builds_apart(pathlib.Path(out_dir), on_policy=bool(actor))
    babyai_env.check_level(level)  # registered, and its grid tiles the frame
    config = BabyaiConfig(
        name=config_name(level, clip_len, on_policy=bool(actor)),
        level=level,
        clip_len=clip_len,
        grid_size=babyai_env.grid_size(level),
        seeds=(int(seeds[0]), int(seeds[1])),
        episodes=episodes,
        expert=expert,
        expert_noise=float(expert_noise),
        blocker_noise=float(blocker_noise),
        # Absolute, so the same run named another way is the same setting.
        actor=str(absolute_path(actor)) if actor else "",
        actor_step=int(actor_step) if actor else -1,
        actor_temperature=float(actor_temperature) if actor else 1.0,
    )
    wanted = config.generation_metadata()  # validates the seed range and episode count
    builder = BabyaiEpisodes(config=config, data_dir=str(out_dir))
    return build_once(builder, out_dir, wanted, _SETTINGS, "BabyAI")


def _check_actor_settings(
    expert: str, expert_noise: float, blocker_noise: float, temperature: float
) -> None:
    if expert != "full_view":
        raise DataError(
            f"an actor's episodes are labelled by the full_view expert (a bot made for each "
            f"state); expert={expert!r} follows its own episode and cannot label another's"
        )
    if expert_noise or blocker_noise:
        raise DataError(
            "expert_noise and blocker_noise perturb the expert's episodes; with an actor the "
            "policy plays, so leave them at 0"
        )
    if temperature < 0:
        raise DataError(f"actor_temperature must be >= 0, got {temperature}")


def _check_builds_apart(out_dir: pathlib.Path, *, on_policy: bool) -> None:
    """Refuses to put expert and on-policy builds in one data directory (a run's `data_dir`
    must name the expert data and nothing else)."""
    root = out_dir / DATASET_NAME
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    other = [n for n in names if n.endswith(ON_POLICY_SUFFIX) != on_policy]
    if other:
        kind, held = ("on-policy", "expert") if on_policy else ("expert", "on-policy")
        raise DataError(
            f"{out_dir} holds {held} data ({', '.join(other)}); write the {kind} build to a "
            "directory of its own"
        )


def open_babyai_split(
    data_dir: str | pathlib.Path,
    split: str,
    *,
    clip_len: int = 16,
    frame_size: int = babyai_env.FRAME_SIZE,
    level: str | None = None,
    on_policy: bool = False,
) -> ClipSource:
    """Opens one split of a BabyAI build, checked against the clip length, size and level.

    `data_dir` is the `out_dir` of `build_babyai` or the dataset directory it returned. Without
    `level`, the one build under `data_dir` with windows of `clip_len` frames is used; with
    several (other levels), `level` must pick one. `on_policy` reads an actor's build (`actor`).
    Items are dicts of numpy values; `mission`
    comes back as UTF-8 bytes.
    """
    data_dir = pathlib.Path(data_dir)
    suffix = ON_POLICY_SUFFIX if on_policy else ""
    if level is not None:
        config = config_name(level, clip_len, on_policy)
    else:
        pattern = f"*_t{clip_len}{suffix}"
        builds = sorted({p.name for p in (data_dir / DATASET_NAME).glob(pattern)})
        if len(builds) > 1:
            raise DataError(
                f"data dir {data_dir} holds BabyAI builds of several levels ({', '.join(builds)});"
                " pass level="
            )
        # With none, `open_split` reports what the data dir holds instead.
        config = builds[0] if builds else f"<level>_t{clip_len}{suffix}"
    source = open_split(
        data_dir,
        split,
        clip_len=clip_len,
        frame_size=frame_size,
        dataset=DATASET_NAME,
        config=config,
    )
    if level is not None and source.metadata.get("level") != level:
        raise DataError(
            f"BabyAI data in {data_dir} was played on {source.metadata.get('level')}, not {level}"
        )
    return source
