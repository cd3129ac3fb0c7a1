"""Hyperparameters of the MaskGIT dynamics model (Genie §2.1, App. F)."""

import dataclasses

from genie_jax.nn.config_parts import DtypeFields

ACTION_MODES = ("add", "prepend")


@dataclasses.dataclass(frozen=True)
class DynamicsConfig(DtypeFields):
    num_layers: int = 12
    dim: int = 512
    num_heads: int = 8
    mlp_ratio: int = 4
    max_frames: int = 16  # the longest rollout, prompt included
    # "add": the action embedding is added to every token of the frame it leads to (Genie);
    # "prepend": one action token per frame, attended to by the frame's tokens (Jasmine found it
    # necessary for faithful CoinRun rollouts).
    action_mode: str = "add"
    qk_norm: bool = True  # Genie's dynamics model uses QK-norm
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"
    # Training mask: per sample a rate r ~ U[min_mask_rate, max_mask_rate], then each token of
    # frames 1..T-1 is masked with probability r; frame 0 is never masked.
    min_mask_rate: float = 0.5
    max_mask_rate: float = 1.0

    def __post_init__(self):
        if self.action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode {self.action_mode!r} is not one of {ACTION_MODES}")
        if not 0.0 <= self.min_mask_rate <= self.max_mask_rate <= 1.0:
            raise ValueError(
                f"mask rates must satisfy 0 <= min ({self.min_mask_rate}) <= max "
                f"({self.max_mask_rate}) <= 1"
            )
