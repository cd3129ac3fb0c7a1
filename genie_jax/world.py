"""A trained (or freshly initialized) Genie ready to sample: tokenizer, LAM, dynamics, sampler.

`load_world(workdir)` reads a `genie train dynamics` workdir: its `config.json` and its newest
checkpoint, which holds all three parts' parameters (the dynamics run carries the frozen
tokenizer and LAM with it). Optimizer state is never read.
"""

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genie_jax.genie_model import GenieModel, standalone_dynamics
from genie_jax.maskgit import Sampler, SamplingConfig
from genie_jax.train.checkpoint import CheckpointNotFoundError, resolved_step
from genie_jax.train.pretrained import load_pretrained_params
from genie_jax.train.tasks import dataclass_from_config, genie_model_from_config
from genie_jax.train.workdir import workdir_path


@dataclasses.dataclass
class World:
    config: ml_collections.ConfigDict
    model: GenieModel
    params: dict
    sampler: Sampler
    step: int | None = None  # the checkpoint step the params come from (None: random init)

    def __post_init__(self):
        apply = self.model.apply
        self._tokenize = jax.jit(lambda p, v: apply({"params": p}, v, method="tokenize"))
        self._detokenize = jax.jit(lambda p, z: apply({"params": p}, z, method="detokenize"))
        self._actions = jax.jit(lambda p, v: apply({"params": p}, v, method="latent_actions"))
        self._lam_predict = jax.jit(
            lambda p, v: apply({"params": p}, v, method=lambda m, x: m.lam(x)[0])
        )

        def last_frame(params, video):
            tokens_N = self.model.tokenizer_config.num_tokens
            mask = jnp.zeros(video.shape[:2] + (tokens_N,), bool).at[:, -1].set(True)
            logits, aux = apply({"params": params}, video, mask)
            return logits[:, -1], aux["tokens"][:, -1]

        self._last_frame = jax.jit(last_frame)

    @property
    def num_actions(self) -> int:
        return self.model.lam_config.num_actions

    @property
    def max_frames(self) -> int:
        return self.model.dynamics_config.max_frames

    @property
    def dynamics_params(self) -> dict:
        return self.params["dynamics"]

    def tokenize(self, video_BTHWC: np.ndarray) -> jax.Array:
        """uint8 or [0, 1] float video -> token indices [B, T, N]."""
        return self._tokenize(self.params, _to_unit(video_BTHWC))

    def detokenize(self, tokens_BTN: jax.Array) -> np.ndarray:
        """Token indices [B, T, N] -> uint8 video [B, T, H, W, C]."""
        video = self._detokenize(self.params, jnp.asarray(tokens_BTN, jnp.int32))
        return np.asarray(jnp.clip(video * 255.0 + 0.5, 0, 255)).astype(np.uint8)

    def rollout_video(
        self, prompt_BPHWC: np.ndarray, actions_BA: np.ndarray, rng: jax.Array, num_frames: int
    ) -> np.ndarray:
        """Prompt frames + latent actions [B, num_frames-1] -> uint8 video (KV-cached)."""
        prompt_BPN = self.tokenize(prompt_BPHWC)
        tokens_BTN = self.sampler.rollout_cached(
            self.dynamics_params, prompt_BPN, actions_BA, rng, num_frames=num_frames
        )
        return self.detokenize(tokens_BTN)

    def lam_predict(self, video_BTHWC: np.ndarray) -> np.ndarray:
        """The LAM's reconstruction of frames 1..T-1, float [B, T-1, H, W, C] in [0, 1]."""
        return np.asarray(self._lam_predict(self.params, _to_unit(video_BTHWC)))

    def next_frame_logits(self, video_BTHWC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits [B, N, V] for the last frame fully masked given the real earlier frames and
        the inferred actions, its real tokens [B, N])."""
        logits, tokens = self._last_frame(self.params, _to_unit(video_BTHWC))
        return np.asarray(logits), np.asarray(tokens)

    def latent_actions(self, video_BTHWC: np.ndarray) -> np.ndarray:
        """Video [B, T, ...] -> the LAM's latent actions [B, T-1]."""
        return np.asarray(self._actions(self.params, _to_unit(video_BTHWC)))


def _to_unit(video: np.ndarray) -> jax.Array:
    video = jnp.asarray(video)
    if video.dtype == jnp.uint8:
        return video.astype(jnp.float32) / 255.0
    return video.astype(jnp.float32)


def sampling_from_config(config: ml_collections.ConfigDict, **overrides) -> SamplingConfig:
    values = {**config.dynamics.sampling.to_dict(), **overrides}
    return dataclass_from_config(SamplingConfig, ml_collections.ConfigDict(values))


def _init_params(model: GenieModel, config: ml_collections.ConfigDict, rng: jax.Array) -> dict:
    """model.init on a 2-frame example (parameter shapes do not depend on the clip length)."""
    size, channels = config.frame_size, model.tokenizer_config.channels
    video = jnp.zeros((1, 2, size, size, channels), jnp.float32)
    mask = jnp.zeros((1, 2, model.tokenizer_config.num_tokens), bool)
    return nn.meta.unbox(model.init(rng, video, mask)["params"])


def _abstract_params(model: GenieModel, config: ml_collections.ConfigDict) -> dict:
    params = jax.eval_shape(lambda: _init_params(model, config, jax.random.key(0)))
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params)


def random_world(config: ml_collections.ConfigDict, *, seed: int = 0, **sampling) -> World:
    """An untrained Genie of the config's sizes (benchmarks need shapes, not weights)."""
    model = genie_model_from_config(config)
    params = jax.jit(lambda r: _init_params(model, config, r))(jax.random.key(seed))
    return World(
        config,
        model,
        params,
        Sampler(standalone_dynamics(model), sampling_from_config(config, **sampling)),
    )


def load_world(workdir: str | os.PathLike, *, step: int | None = None, **sampling) -> World:
    """The Genie trained in a `genie train dynamics` workdir (params only; newest step by
    default). Parameters land on one device whatever mesh the run trained on."""
    workdir = workdir_path(workdir)
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise CheckpointNotFoundError(
            f"{config_path} not found: pass the --workdir of a `genie train dynamics` run"
        )
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    model = genie_model_from_config(config)
    params = load_pretrained_params(workdir, "dynamics", _abstract_params(model, config), step=step)
    sampler = Sampler(standalone_dynamics(model), sampling_from_config(config, **sampling))
    return World(config, model, params, sampler, step=resolved_step(workdir, step))
