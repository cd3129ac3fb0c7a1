"""Hyperparameters of the latent action model (Genie §2.1, App. F)."""

import dataclasses

from genie_jax.nn.config_parts import DtypeFields, PatchGridFields


@dataclasses.dataclass(frozen=True)
class LAMConfig(DtypeFields, PatchGridFields):
    frame_size: int = 64
    channels: int = 3
    patch_size: int = 16  # Genie: 16 for the pixel-input LAM
    max_frames: int = 16
    encoder_layers: int = 8
    encoder_dim: int = 512
    encoder_heads: int = 8
    decoder_layers: int = 8
    decoder_dim: int = 512
    decoder_heads: int = 8
    mlp_ratio: int = 4
    num_actions: int = 6  # A: the latent action codebook (Genie: 8; 6 for CoinRun)
    latent_dim: int = 32  # E
    commitment_weight: float = 0.25
    qk_norm: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"
