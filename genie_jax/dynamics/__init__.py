"""MaskGIT dynamics model over tokenizer indices, conditioned on latent actions."""

from genie_jax.dynamics.config import ACTION_MODES, DynamicsConfig
from genie_jax.dynamics.masking import sample_training_mask
from genie_jax.dynamics.model import DynamicsModel, frame_actions

__all__ = [
    "ACTION_MODES",
    "DynamicsConfig",
    "DynamicsModel",
    "frame_actions",
    "sample_training_mask",
]
