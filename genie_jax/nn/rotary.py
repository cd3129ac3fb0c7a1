"""Rotary position embedding (RoPE) over a 2D patch grid, for spatial attention.

Queries and keys are rotated, pair of channels by pair of channels, by an angle proportional to
the token's row (half of the pairs) or column (the other half). The score q . k then depends on
the two tokens' offset (d_row, d_col), not on where they sit: a query can prefer "the cell in
front of me" wherever it is. This is the axial 2D form of RoPE (Su et al.; Heo et al. for
vision transformers). Positions outside the grid (a WAM's words and action slot) get angle 0,
i.e. no rotation.
"""

import jax
import jax.numpy as jnp


def grid_rotary_angles(
    rows: int, cols: int, head_dim: int, *, leading: int = 0, base: float = 100.0
) -> jax.Array:
    """Angles [leading + rows * cols, head_dim // 2]: zeros for the `leading` positions, then
    the H x W grid row-major. Pair i < head_dim / 4 turns with the row at frequency
    base^(-i / (head_dim / 4)); the next head_dim / 4 pairs with the column, same frequencies."""
    if head_dim % 4:
        raise ValueError(f"2D rotary positions need a head size divisible by 4, got {head_dim}")
    per_axis = head_dim // 4
    freqs_F = base ** (-jnp.arange(per_axis, dtype=jnp.float32) / per_axis)
    row_N, col_N = (
        a.reshape(-1) for a in jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij")
    )
    grid_NF = jnp.concatenate(
        [row_N[:, None] * freqs_F[None, :], col_N[:, None] * freqs_F[None, :]], axis=1
    )
    return jnp.concatenate([jnp.zeros((leading, 2 * per_axis), jnp.float32), grid_NF], axis=0)


def heads_with_rotary(angles_LF: jax.Array, num_heads: int, rotary_heads: int) -> jax.Array:
    """Per-head angles [L, K, F]: the first `rotary_heads` heads turn by `angles_LF`, the others
    not at all (their scores see content only, whatever the offset)."""
    if not 0 <= rotary_heads <= num_heads:
        raise ValueError(f"rotary_heads {rotary_heads} must be in [0, {num_heads}]")
    rotated_1K1 = (jnp.arange(num_heads) < rotary_heads)[None, :, None]
    return jnp.where(rotated_1K1, angles_LF[:, None, :], 0.0)


def apply_rotary(x_SLKH: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotates channel pairs (j, j + Dh/2) of every head by angles[l, j] ([L, F], the same for
    every head) or angles[l, k, j] ([L, K, F], `heads_with_rotary`); fp32 inside."""
    _, length, heads, head_dim = x_SLKH.shape
    half = head_dim // 2
    if angles.shape not in ((length, half), (length, heads, half)):
        raise ValueError(
            f"rotary angles {angles.shape} do not match {length} positions, {heads} heads and "
            f"head size {head_dim}"
        )
    angles_LKF = angles if angles.ndim == 3 else angles[:, None, :]
    x = x_SLKH.astype(jnp.float32)
    first, second = x[..., :half], x[..., half:]
    cos_1LKF = jnp.cos(angles_LKF)[None]
    sin_1LKF = jnp.sin(angles_LKF)[None]
    rotated = jnp.concatenate(
        [first * cos_1LKF - second * sin_1LKF, second * cos_1LKF + first * sin_1LKF], axis=-1
    )
    return rotated.astype(x_SLKH.dtype)
