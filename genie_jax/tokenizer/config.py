"""Hyperparameters of the video tokenizer, one frozen dataclass (modules never see ConfigDicts)."""

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    frame_size: int = 64  # square frames, pixels per side
    channels: int = 3
    patch_size: int = 4  # Genie: 4 for Platformers and CoinRun
    max_frames: int = 16  # temporal positions the model knows
    encoder_layers: int = 8
    encoder_dim: int = 512
    encoder_heads: int = 8
    decoder_layers: int = 8
    decoder_dim: int = 512
    decoder_heads: int = 8
    mlp_ratio: int = 4  # F = mlp_ratio * D
    codebook_size: int = 1024  # V
    latent_dim: int = 32  # E
    commitment_weight: float = 0.25
    qk_norm: bool = False
    dtype: str = "float32"  # compute dtype; "bfloat16" on accelerators
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"

    @property
    def grid_size(self) -> int:
        """Patches per side (H = W)."""
        if self.frame_size % self.patch_size:
            raise ValueError(
                f"frame_size {self.frame_size} is not divisible by patch_size {self.patch_size}"
            )
        return self.frame_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens per frame, N."""
        return self.grid_size**2

    @property
    def jnp_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)
