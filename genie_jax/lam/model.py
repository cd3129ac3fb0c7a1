"""Pixel-input latent action model (Genie §2.1, Fig. 5).

Alignment, the pitfall to avoid: ã_t describes the transition x_t -> x_{t+1} (0-based t in
0..T-2), so a clip of T frames yields T-1 latent actions.

- Encoder: every frame's patches plus one learned action token, positions, a causal ST
  transformer. The action token of frame t+1 has seen x_0..x_{t+1}; projected to E and
  quantized to one of A codes it is ã_t.
- Decoder: frames x_0..x_{T-2}, each with its ã_t added to every token, through a causal ST
  transformer; the output at frame t has seen x_0..x_t and ã_0..ã_t and predicts x_{t+1}
  (sigmoid, pixels in [0, 1]). The A-code bottleneck forces ã_t to carry only what changes.

Only the encoder and codebook are needed after training (`infer_actions`).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.lam.config import LAMConfig
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


class LatentActionModel(nn.Module):
    """Video [B, T, H, W, C] in [0, 1] -> T-1 latent actions and next-frame predictions."""

    config: LAMConfig

    def setup(self):
        cfg = self.config
        stack = stack_options(cfg)
        self.encoder_patch_embed = logical_dense(
            cfg.encoder_dim, ("patch", "embed"), cfg, "encoder_patch"
        )
        self.action_token = self.param(
            "action_token",
            nn.with_logical_partitioning(nn.initializers.normal(0.02), ("embed",)),
            (cfg.encoder_dim,),
            cfg.jnp_param_dtype,
        )
        self.encoder_pos = FactorizedPositionEmbedding(
            cfg.max_frames, cfg.num_tokens + 1, cfg.jnp_param_dtype, name="encoder_pos"
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
            codebook_size=cfg.num_actions,
            code_dim=cfg.latent_dim,
            commitment_weight=cfg.commitment_weight,
            param_dtype=cfg.jnp_param_dtype,
            name="quantizer",
        )
        self.decoder_patch_embed = logical_dense(
            cfg.decoder_dim, ("patch", "embed"), cfg, "decoder_patch"
        )
        self.action_embed = logical_dense(cfg.decoder_dim, ("code", "embed"), cfg, "action_embed")
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
        """Video -> (quantized actions [B, T-1, E], quantizer aux with `indices` [B, T-1])."""
        check_video(video_BTHWC, self.config, "LAM", min_frames=2)
        pixels_BTNP = patchify(video_BTHWC * 2.0 - 1.0, self.config.patch_size)
        x_BTND = self.encoder_patch_embed(pixels_BTNP)
        batch, frames, _, dim = x_BTND.shape
        token_BT1D = jnp.broadcast_to(
            self.action_token.astype(x_BTND.dtype), (batch, frames, 1, dim)
        )
        x_BTND = self.encoder_pos(jnp.concatenate([token_BT1D, x_BTND], axis=2))
        x_BTND = self.encoder(x_BTND)
        # The action token of frame t+1 has seen x_0..x_{t+1}: it describes x_t -> x_{t+1}.
        z_BAE = self.to_latent(x_BTND[:, 1:, 0])
        return self.quantizer(z_BAE, train=train)

    def infer_actions(self, video_BTHWC: jax.Array) -> jax.Array:
        """Video [B, T, ...] -> latent action indices [B, T-1] in 0..A-1."""
        _, aux = self.encode(video_BTHWC, train=False)
        return aux["indices"]

    def decode(self, video_BTHWC: jax.Array, actions_BAE: jax.Array) -> jax.Array:
        """Frames x_0..x_{T-2} (of a T-frame clip) and ã_0..ã_{T-2} -> predicted x_1..x_{T-1}."""
        cfg = self.config
        past_BAHWC = video_BTHWC[:, :-1]
        x_BAND = self.decoder_patch_embed(patchify(past_BAHWC * 2.0 - 1.0, cfg.patch_size))
        x_BAND = x_BAND + self.action_embed(actions_BAE)[:, :, None, :]
        x_BAND = self.decoder(self.decoder_pos(x_BAND))
        pixels_BANP = self.to_pixels(x_BAND).astype(jnp.float32)
        logits_BAHWC = unpatchify(pixels_BANP, cfg.patch_size, cfg.grid_size, cfg.grid_size)
        return jax.nn.sigmoid(logits_BAHWC)

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Latent action indices [...] -> code vectors [..., E]."""
        return self.quantizer.lookup(indices)

    def __call__(self, video_BTHWC: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict]:
        """Video [B, T, H, W, C] -> (predicted frames 1..T-1 [B, T-1, H, W, C], quantizer aux)."""
        actions_BAE, aux = self.encode(video_BTHWC, train=train)
        return self.decode(video_BTHWC, actions_BAE), aux
