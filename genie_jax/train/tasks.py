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

from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.steps import tokenizer_eval_step, tokenizer_train_step


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    model: nn.Module
    example_inputs: tuple  # positional inputs for model.init (batch of 1)
    train_step: Callable  # (state, batch, rng) -> (state, metrics)
    eval_step: Callable  # (state, batch) -> metrics
    section: ml_collections.ConfigDict  # the config's section for this model


def dataclass_from_config(cls, section: ml_collections.ConfigDict):
    """Builds a frozen model config, naming any key the dataclass does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    values = section.to_dict()
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys in config: {', '.join(unknown)}")
    return cls(**values)


def tokenizer_task(config: ml_collections.ConfigDict) -> Task:
    model_config = dataclass_from_config(TokenizerConfig, config.tokenizer.model)
    if model_config.frame_size != config.frame_size:
        raise ValueError(
            f"config.tokenizer.model.frame_size={model_config.frame_size} but "
            f"config.frame_size={config.frame_size}"
        )
    if config.clip_len > model_config.max_frames:
        raise ValueError(
            f"config.clip_len={config.clip_len} exceeds tokenizer max_frames="
            f"{model_config.max_frames}"
        )
    size = model_config.frame_size
    example = jnp.zeros((1, config.clip_len, size, size, model_config.channels), jnp.float32)
    return Task(
        name="tokenizer",
        model=Tokenizer(model_config),
        example_inputs=(example,),
        train_step=functools.partial(
            tokenizer_train_step, dead_code_threshold=config.tokenizer.dead_code_threshold
        ),
        eval_step=tokenizer_eval_step,
        section=config.tokenizer,
    )


TASKS: dict[str, Callable[[ml_collections.ConfigDict], Task]] = {"tokenizer": tokenizer_task}
