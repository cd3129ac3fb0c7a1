"""Hyperparameters of the video tokenizer, one frozen dataclass (modules never see ConfigDicts)."""

import dataclasses

from genie_jax.nn.config_parts import DtypeFields, PatchGridFields


@dataclasses.dataclass(frozen=True)
class TokenizerConfig(DtypeFields, PatchGridFields):
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
