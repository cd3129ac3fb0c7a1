"""MaskGIT sampling: the cosine schedule, one-frame decoding, and autoregressive rollouts."""

from genie_jax.maskgit.decode import SamplingConfig, decode_frame
from genie_jax.maskgit.rollout import CachedState, Sampler, check_actions
from genie_jax.maskgit.schedule import cosine_mask_ratio, masked_after_step

__all__ = [
    "CachedState",
    "Sampler",
    "SamplingConfig",
    "check_actions",
    "cosine_mask_ratio",
    "decode_frame",
    "masked_after_step",
]
