"""What the training loop needs to know about each model: built from the experiment config.

A `Task` bundles the model, its example inputs for initialization, and its pure steps. The loop
in `loop.py` is the same for every model; the LAM and dynamics model add their tasks here.
"""

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from genie_jax.config_loading import ConfigError
from genie_jax.dynamics import DynamicsConfig
from genie_jax.genie_model import GenieModel
from genie_jax.lam import LAMConfig, LatentActionModel
from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.dynamics_steps import dynamics_eval_step, dynamics_train_step
from genie_jax.train.steps import (
    lam_eval_step,
    lam_train_step,
    tokenizer_eval_step,
    tokenizer_train_step,
)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    model: nn.Module
    example_inputs: tuple  # positional inputs for model.init (batch of 1)
    train_step: Callable  # (state, batch, rng) -> (state, metrics)
    eval_step: Callable  # (state, batch) -> metrics
    section: ml_collections.ConfigDict  # the config's section for this model
    frozen: tuple[str, ...] = ()  # top-level parameter groups that never train
    # group -> the workdir of the run that trained it, or (workdir, group in that run[, fresh
    # submodules[, step]]) (`loop._pretrained_source`)
    pretrained: dict[str, str | tuple] = dataclasses.field(default_factory=dict)
    # grain maps/filters from a stored record to the batch fields the steps read (None: keep
    # `video` and `actions`), for the train and the validation split.
    train_operations: tuple | None = None
    eval_operations: tuple | None = None
    # the opened train split -> the random-access source the sampler draws from (None: as is)
    train_source_view: Callable | None = None


def dataclass_from_config(cls, section: ml_collections.ConfigDict):
    """Builds a frozen model config, naming any key the dataclass does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    values = section.to_dict()
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys in config: {', '.join(unknown)}")
    try:
        return cls(**values)
    except ValueError as error:
        raise ConfigError(f"{cls.__name__}: {error}") from None


def _check_frames(config: ml_collections.ConfigDict, name: str, model_config) -> None:
    if getattr(model_config, "frame_size", config.frame_size) != config.frame_size:
        raise ConfigError(
            f"config.{name}.model.frame_size={model_config.frame_size} but "
            f"config.frame_size={config.frame_size}"
        )
    if config.clip_len > model_config.max_frames:
        raise ConfigError(
            f"config.clip_len={config.clip_len} exceeds {name} max_frames={model_config.max_frames}"
        )


def _example_video(config: ml_collections.ConfigDict, channels: int) -> jnp.ndarray:
    size = config.frame_size
    return jnp.zeros((1, config.clip_len, size, size, channels), jnp.float32)


def _video_vq_task(config, name: str, config_cls, model_cls, train_step, eval_step) -> Task:
    """A model trained alone on clips with a reconstruction + VQ loss (tokenizer, LAM)."""
    section = config[name]
    model_config = dataclass_from_config(config_cls, section.model)
    _check_frames(config, name, model_config)
    return Task(
        name=name,
        model=model_cls(model_config),
        example_inputs=(_example_video(config, model_config.channels),),
        train_step=functools.partial(train_step, dead_code_threshold=section.dead_code_threshold),
        eval_step=eval_step,
        section=section,
    )


def tokenizer_task(config: ml_collections.ConfigDict) -> Task:
    return _video_vq_task(
        config, "tokenizer", TokenizerConfig, Tokenizer, tokenizer_train_step, tokenizer_eval_step
    )


def lam_task(config: ml_collections.ConfigDict) -> Task:
    return _video_vq_task(
        config, "lam", LAMConfig, LatentActionModel, lam_train_step, lam_eval_step
    )


def genie_model_from_config(config: ml_collections.ConfigDict) -> GenieModel:
    """The tokenizer + LAM + dynamics module an experiment config describes."""
    tokenizer = dataclass_from_config(TokenizerConfig, config.tokenizer.model)
    lam = dataclass_from_config(LAMConfig, config.lam.model)
    dynamics = dataclass_from_config(DynamicsConfig, config.dynamics.model)
    for name, part in (("tokenizer", tokenizer), ("lam", lam), ("dynamics", dynamics)):
        _check_frames(config, name, part)
    return GenieModel(tokenizer, lam, dynamics)


def dynamics_task(config: ml_collections.ConfigDict) -> Task:
    """Dynamics training on top of a frozen tokenizer and a frozen (or co-trained) LAM.

    The tokenizer's params come from `config.tokenizer_workdir`; the LAM's from
    `config.lam_workdir` (required unless `config.dynamics.cotrain_lam`, where it is optional
    and only initializes the LAM).
    """
    section = config.dynamics
    model = genie_model_from_config(config)
    cotrain = section.cotrain_lam
    pretrained = {}
    if not config.tokenizer_workdir:
        raise ConfigError(
            "config.tokenizer_workdir is empty: pass the workdir of a `genie train tokenizer` run"
        )
    pretrained["tokenizer"] = config.tokenizer_workdir
    if config.lam_workdir:
        pretrained["lam"] = config.lam_workdir
    elif not cotrain:
        raise ConfigError(
            "config.lam_workdir is empty: pass the workdir of a `genie train lam` run, or set "
            "config.dynamics.cotrain_lam=True to train the LAM alongside"
        )
    frozen = ("tokenizer",) if cotrain else ("tokenizer", "lam")
    num_tokens = model.tokenizer_config.num_tokens
    channels = model.tokenizer_config.channels
    example_mask = jnp.zeros((1, config.clip_len, num_tokens), bool)
    return Task(
        name="dynamics",
        model=model,
        example_inputs=(_example_video(config, channels), example_mask),
        train_step=functools.partial(
            dynamics_train_step,
            num_tokens=num_tokens,
            frozen=frozen,
            min_mask_rate=model.dynamics_config.min_mask_rate,
            max_mask_rate=model.dynamics_config.max_mask_rate,
            lam_loss_weight=section.lam_loss_weight,
            dead_code_threshold=config.lam.dead_code_threshold,
        ),
        eval_step=functools.partial(
            dynamics_eval_step, num_tokens=num_tokens, mask_rate=section.eval_mask_rate
        ),
        section=section,
        frozen=frozen,
        pretrained=pretrained,
    )


TASKS: dict[str, Callable[[ml_collections.ConfigDict], Task]] = {
    "tokenizer": tokenizer_task,
    "lam": lam_task,
    "dynamics": dynamics_task,
}
