"""Decoder-only MaskGIT dynamics model (Genie §2.1, Fig. 6).

Input: the tokenizer's indices z [B, T, N] with the mask id V where a token is hidden, and one
latent action per frame. Output: logits [B, T, N, V] in fp32.

Action alignment, the pitfall to avoid: ã_t describes x_t -> x_{t+1}, so it conditions frame
t+1. `frame_actions` turns the T-1 transition actions of a clip into T per-frame inputs:
frame 0 gets the learned "no action" id A, frame t >= 1 gets ã_{t-1}. With causal temporal
attention, ã_t can then influence frames t+1.. and never an earlier one.

Two ways to inject the action (config `action_mode`):
  add      its embedding is added to every token of the frame (Genie);
  prepend  it becomes one extra token at the front of the frame (Jasmine, CoinRun); the
           frame's tokens see it through spatial attention; its output is dropped.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.dynamics.config import DynamicsConfig
from genie_jax.nn import (
    FactorizedPositionEmbedding,
    KVCache,
    STTransformer,
    empty_kv_cache,
    stack_options,
)


def frame_actions(actions_BA: jax.Array, num_actions: int) -> jax.Array:
    """Transition actions [B, T-1] -> per-frame inputs [B, T]: no-action id A, then ã_0..ã_{T-2}."""
    no_action_B1 = jnp.full((actions_BA.shape[0], 1), num_actions, actions_BA.dtype)
    return jnp.concatenate([no_action_B1, actions_BA], axis=1)


class DynamicsModel(nn.Module):
    config: DynamicsConfig
    vocab_size: int  # V, the tokenizer's codebook size; id V is the mask token
    num_tokens: int  # N, tokens per frame
    num_actions: int  # A, the LAM's codebook size; id A means "no action" (frame 0)

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    @property
    def tokens_per_frame(self) -> int:
        """Positions per frame in the transformer: N, or N+1 with a prepended action."""
        return self.num_tokens + (self.config.action_mode == "prepend")

    def setup(self):
        cfg = self.config
        embed_init = nn.initializers.normal(stddev=0.02)
        self.token_embed = nn.Embed(
            self.vocab_size + 1,
            cfg.dim,
            dtype=cfg.jnp_dtype,
            param_dtype=cfg.jnp_param_dtype,
            embedding_init=nn.with_logical_partitioning(embed_init, ("codebook", "embed")),
            name="token_embed",
        )
        self.action_embed = nn.Embed(
            self.num_actions + 1,
            cfg.dim,
            dtype=cfg.jnp_dtype,
            param_dtype=cfg.jnp_param_dtype,
            embedding_init=nn.with_logical_partitioning(embed_init, ("codebook", "embed")),
            name="action_embed",
        )
        self.pos = FactorizedPositionEmbedding(
            cfg.max_frames, self.tokens_per_frame, cfg.jnp_param_dtype, name="pos"
        )
        self.transformer = STTransformer(
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            mlp_dim=cfg.mlp_ratio * cfg.dim,
            name="transformer",
            **stack_options(cfg),
        )
        # fp32 logits: the softmax cross-entropy must not run in bf16.
        self.head = nn.Dense(
            self.vocab_size,
            dtype=jnp.float32,
            param_dtype=cfg.jnp_param_dtype,
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.lecun_normal(), ("embed", "vocab")
            ),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
            name="head",
        )

    def _check_inputs(self, tokens_BTN: jax.Array, frame_actions_BT: jax.Array) -> None:
        if tokens_BTN.ndim != 3 or tokens_BTN.shape[2] != self.num_tokens:
            raise ValueError(
                f"dynamics expects tokens [B, T, {self.num_tokens}], got {tokens_BTN.shape}"
            )
        if frame_actions_BT.shape != tokens_BTN.shape[:2]:
            raise ValueError(
                f"one action per frame expected: tokens {tokens_BTN.shape}, actions "
                f"{frame_actions_BT.shape}"
            )

    def __call__(
        self,
        tokens_BTN: jax.Array,
        frame_actions_BT: jax.Array,
        *,
        kv_cache: KVCache | None = None,
        cache_index: int | jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, KVCache]:
        """Logits [B, T, N, V] for every token; with `kv_cache`, the T frames are frames
        cache_index.. of the rollout and (logits, updated cache) is returned."""
        self._check_inputs(tokens_BTN, frame_actions_BT)
        x_BTND = self.token_embed(tokens_BTN)
        action_BTD = self.action_embed(frame_actions_BT)
        if self.config.action_mode == "add":
            x_BTND = x_BTND + action_BTD[:, :, None, :]
        else:
            x_BTND = jnp.concatenate([action_BTD[:, :, None, :], x_BTND], axis=2)
        offset = 0 if kv_cache is None else cache_index
        x_BTND = self.pos(x_BTND, time_offset=offset)
        if kv_cache is None:
            x_BTND = self.transformer(x_BTND)
        else:
            x_BTND, kv_cache = self.transformer(x_BTND, kv_cache=kv_cache, cache_index=cache_index)
        if self.config.action_mode == "prepend":
            x_BTND = x_BTND[:, :, 1:]
        logits_BTNV = self.head(x_BTND.astype(jnp.float32))
        if kv_cache is None:
            return logits_BTNV
        return logits_BTNV, kv_cache

    def empty_cache(self, batch: int, capacity: int | None = None) -> KVCache:
        """Zeroed temporal key/value buffers for `capacity` frames (default max_frames)."""
        cfg = self.config
        return empty_kv_cache(
            num_layers=cfg.num_layers,
            batch=batch,
            num_tokens=self.tokens_per_frame,
            capacity=capacity or cfg.max_frames,
            dim=cfg.dim,
            num_heads=cfg.num_heads,
            dtype=cfg.jnp_dtype,
        )
