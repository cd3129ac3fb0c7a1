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


def grid_coordinate_features(rows: int, cols: int, octaves: int = 3) -> jax.Array:
    """Fixed features of each token's place on an H x W grid, row-major: [N, 2 + 4 * octaves].

    Per axis, the coordinate u scaled to [-1, 1] and sin / cos(pi * 2^k * u) for k < octaves.
    Ordered and smooth where learned tables are neither: offsets between two tokens are
    linear in these features (u), or a rotation of them (sin, cos).
    """

    def axis(count: int) -> jax.Array:
        u_C = jnp.linspace(-1.0, 1.0, count) if count > 1 else jnp.zeros((1,))
        angles_CK = jnp.pi * u_C[:, None] * (2.0 ** jnp.arange(octaves))[None, :]
        return jnp.concatenate([u_C[:, None], jnp.sin(angles_CK), jnp.cos(angles_CK)], axis=1)

    row_HF, col_WF = axis(rows), axis(cols)
    row_HWF = jnp.broadcast_to(row_HF[:, None, :], (rows, cols, row_HF.shape[1]))
    col_HWF = jnp.broadcast_to(col_WF[None, :, :], (rows, cols, col_WF.shape[1]))
    return jnp.concatenate([row_HWF, col_HWF], axis=-1).reshape(rows * cols, -1)


class GridCoordinateEmbedding(nn.Module):
    """A learned linear map of `grid_coordinate_features` (no bias): [N, D].

    The map starts as small as the learned position tables (std 0.02), so the token content
    is not swamped at initialization.
    """

    rows: int  # H
    cols: int  # W
    dim: int  # D
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self) -> jax.Array:
        features_NF = grid_coordinate_features(self.rows, self.cols)
        kernel_FD = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02), (None, "embed")),
            (features_NF.shape[1], self.dim),
            self.param_dtype,
        )
        return features_NF @ kernel_FD
