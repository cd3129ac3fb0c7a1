"""Latent action model: a tiny discrete codebook of actions inferred from pairs of frames."""

from genie_jax.lam.config import LAMConfig
from genie_jax.lam.model import LatentActionModel

__all__ = ["LAMConfig", "LatentActionModel"]
