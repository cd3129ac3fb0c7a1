"""ST-ViViT VQ-VAE (Genie §2.1): frames -> discrete tokens -> frames, causal in time.

Encoder: patchify, linear embed, positions (once), ST transformer with causal temporal
attention, projection to the E-d latent, vector quantizer. Decoder: codes -> D, positions,
ST transformer (also causal), projection to patch pixels. Because both stacks are causal, the
tokens of frame t depend only on frames 1..t, and so does the reconstruction of frame t.

`encode` and `decode_indices` are used on their own by the dynamics model and the WAM.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.nn import (
    FactorizedPositionEmbedding,
    STTransformer,
    VectorQuantizer,
    check_video,
    logical_dense,
    patchify,
    stack_options,
    unpatchify,
)
from genie_jax.tokenizer.config import TokenizerConfig


class Tokenizer(nn.Module):
    """Video VQ-VAE. Pixels enter and leave as floats in [0, 1]."""

    config: TokenizerConfig

    def setup(self):
        cfg = self.config
        stack = stack_options(cfg)
        self.patch_embed = logical_dense(cfg.encoder_dim, ("patch", "embed"), cfg, "patch_embed")
        self.encoder_pos = FactorizedPositionEmbedding(
            cfg.max_frames, cfg.num_tokens, cfg.jnp_param_dtype, name="encoder_pos"
        )
        self.encoder = STTransformer(
            num_layers=cfg.encoder_layers,
            num_heads=cfg.encoder_heads,
            mlp_dim=cfg.mlp_ratio * cfg.encoder_dim,
            name="encoder",
            **stack,
        )
        self.to_latent = logical_dense(cfg.latent_dim, ("embed", "code"), cfg, "to_latent")
        self.quantizer = VectorQuantizer(
            codebook_size=cfg.codebook_size,
            code_dim=cfg.latent_dim,
            commitment_weight=cfg.commitment_weight,
            param_dtype=cfg.jnp_param_dtype,
            name="quantizer",
        )
        self.from_latent = logical_dense(cfg.decoder_dim, ("code", "embed"), cfg, "from_latent")
        self.decoder_pos = FactorizedPositionEmbedding(
            cfg.max_frames, cfg.num_tokens, cfg.jnp_param_dtype, name="decoder_pos"
        )
        self.decoder = STTransformer(
            num_layers=cfg.decoder_layers,
            num_heads=cfg.decoder_heads,
            mlp_dim=cfg.mlp_ratio * cfg.decoder_dim,
            name="decoder",
            **stack,
        )
        patch_pixels = cfg.patch_size**2 * cfg.channels
        self.to_pixels = logical_dense(patch_pixels, ("embed", "patch"), cfg, "to_pixels")

    def encode(self, video_BTHWC: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Pixels [B, T, H*p, W*p, C] in [0, 1] -> (quantized latents [B, T, N, E], aux).

        aux holds the quantizer's outputs, `indices` [B, T, N] among them.
        """
        check_video(video_BTHWC, self.config, "tokenizer")
        pixels_BTNP = patchify(video_BTHWC * 2.0 - 1.0, self.config.patch_size)
        x_BTND = self.encoder_pos(self.patch_embed(pixels_BTNP))
        x_BTND = self.encoder(x_BTND)
        z_BTNE = self.to_latent(x_BTND)
        return self.quantizer(z_BTNE, train=train)

    def decode(self, z_BTNE: jax.Array) -> jax.Array:
        """Quantized latents [B, T, N, E] -> pixels [B, T, H*p, W*p, C] (fp32, about [0, 1])."""
        cfg = self.config
        x_BTND = self.decoder_pos(self.from_latent(z_BTNE))
        x_BTND = self.decoder(x_BTND)
        pixels_BTNP = self.to_pixels(x_BTND).astype(jnp.float32)
        video_BTHWC = unpatchify(pixels_BTNP, cfg.patch_size, cfg.grid_size, cfg.grid_size)
        return (video_BTHWC + 1.0) / 2.0

    def decode_indices(self, indices_BTN: jax.Array) -> jax.Array:
        """Token indices [B, T, N] -> pixels [B, T, H*p, W*p, C]."""
        return self.decode(self.quantizer.lookup(indices_BTN))

    def __call__(self, video_BTHWC: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Pixels [B, T, H, W, C] in [0, 1] -> (reconstruction [B, T, H, W, C], aux)."""
        z_BTNE, aux = self.encode(video_BTHWC, train=train)
        return self.decode(z_BTNE), aux
