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


def apply_rotary(x_SLKH: jax.Array, angles_LF: jax.Array) -> jax.Array:
    """Rotates channel pairs (j, j + Dh/2) of every head by angles_LF[l, j] (fp32 inside)."""
    half = x_SLKH.shape[-1] // 2
    if angles_LF.shape != (x_SLKH.shape[1], half):
        raise ValueError(
            f"rotary angles {angles_LF.shape} do not match {x_SLKH.shape[1]} positions and "
            f"head size {x_SLKH.shape[-1]}"
        )
    x = x_SLKH.astype(jnp.float32)
    first, second = x[..., :half], x[..., half:]
    cos_1L1F = jnp.cos(angles_LF)[None, :, None, :]
    sin_1L1F = jnp.sin(angles_LF)[None, :, None, :]
    rotated = jnp.concatenate(
        [first * cos_1L1F - second * sin_1L1F, second * cos_1L1F + first * sin_1L1F], axis=-1
    )
    return rotated.astype(x_SLKH.dtype)
