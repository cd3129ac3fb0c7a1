"""Learned factorized (time + space) positional embedding, added once at the stack input.

Adding it in every block is one of the pitfalls of earlier reimplementations (see
GENIE_FACTS); the ST stack never adds positions itself.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class FactorizedPositionEmbedding(nn.Module):
    """x_BTND + time_TD[t] + space_ND[n]."""

    max_frames: int  # longest sequence the model will ever see (the rollout horizon)
    num_tokens: int  # tokens per frame, N
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BTND: jax.Array, *, time_offset: int | jax.Array = 0) -> jax.Array:
        _, num_frames, num_tokens, dim = x_BTND.shape
        if num_tokens != self.num_tokens:
            raise ValueError(f"expected {self.num_tokens} tokens per frame, got {num_tokens}")
        # dynamic_slice clamps out-of-range starts, which would silently reuse earlier rows.
        last = num_frames + (time_offset if isinstance(time_offset, int) else 0)
        if last > self.max_frames:
            raise ValueError(
                f"frames {last - num_frames}..{last - 1} exceed max_frames {self.max_frames}"
            )
        init = nn.initializers.normal(stddev=0.02)
        time_TD = self.param(
            "time",
            nn.with_logical_partitioning(init, ("time", "embed")),
            (self.max_frames, dim),
            self.param_dtype,
        )
        space_ND = self.param(
            "space",
            nn.with_logical_partitioning(init, ("tokens", "embed")),
            (self.num_tokens, dim),
            self.param_dtype,
        )
        time_TD = jax.lax.dynamic_slice_in_dim(time_TD, time_offset, num_frames, axis=0)
        pos_TND = time_TD[:, None, :] + space_ND[None, :, :]
        return x_BTND + pos_TND.astype(x_BTND.dtype)


class GridPositionEmbedding(nn.Module):
    """row_HD[r] + col_WD[c] for the tokens of an H x W patch grid, flattened row-major: [N, D].

    A learned table per axis instead of one vector per token: tokens in the same row (or
    column) share a component from the first step, where per-token vectors must each learn
    where their token sits. Added on top of the stack's per-position embedding.
    """

    rows: int  # H
    cols: int  # W
    dim: int  # D
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self) -> jax.Array:
        init = nn.initializers.normal(stddev=0.02)
        row_HD = self.param(
            "row",
            nn.with_logical_partitioning(init, ("tokens", "embed")),
            (self.rows, self.dim),
            self.param_dtype,
        )
        col_WD = self.param(
            "col",
            nn.with_logical_partitioning(init, ("tokens", "embed")),
            (self.cols, self.dim),
            self.param_dtype,
        )
        grid_HWD = row_HD[:, None, :] + col_WD[None, :, :]
        return grid_HWD.reshape(self.rows * self.cols, self.dim)
