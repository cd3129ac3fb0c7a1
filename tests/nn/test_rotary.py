"""2D rotary positions: scores see offsets only; the ST stack passes them to spatial attention."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.nn import (
    Attention,
    STTransformer,
    apply_rotary,
    grid_rotary_angles,
    heads_with_rotary,
)

ROWS, COLS, HEAD = 3, 4, 8


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _scores(q_H, k_H, angles_LF) -> np.ndarray:
    """[L, L] scores of one query vector and one key vector placed at every position."""
    positions = angles_LF.shape[0]
    q_1LKH = jnp.broadcast_to(q_H, (1, positions, 1, HEAD))
    k_1LKH = jnp.broadcast_to(k_H, (1, positions, 1, HEAD))
    q_LH = apply_rotary(q_1LKH, angles_LF)[0, :, 0]
    k_LH = apply_rotary(k_1LKH, angles_LF)[0, :, 0]
    return np.asarray(q_LH @ k_LH.T)


def test_scores_depend_on_the_offset_only():
    q_H, k_H = jax.random.normal(_key(0), (2, HEAD))
    angles_NF = grid_rotary_angles(ROWS, COLS, HEAD)
    scores = _scores(q_H, k_H, angles_NF)
    by_offset: dict[tuple[int, int], list[float]] = {}
    for a in range(ROWS * COLS):
        for b in range(ROWS * COLS):
            offset = (b // COLS - a // COLS, b % COLS - a % COLS)
            by_offset.setdefault(offset, []).append(scores[a, b])
    spreads = [np.ptp(v) for v in by_offset.values()]
    assert max(spreads) < 1e-5
    # ... and the offset matters, along both axes.
    means = {offset: np.mean(v) for offset, v in by_offset.items()}
    assert abs(means[(0, 1)] - means[(0, 0)]) > 1e-2
    assert abs(means[(1, 0)] - means[(0, 0)]) > 1e-2
    assert abs(means[(1, 0)] - means[(0, 1)]) > 1e-2


def test_leading_positions_are_not_rotated_and_norms_are_kept():
    angles_LF = grid_rotary_angles(ROWS, COLS, HEAD, leading=3)
    assert angles_LF.shape == (3 + ROWS * COLS, HEAD // 2)
    x_SLKH = jax.random.normal(_key(1), (2, angles_LF.shape[0], 2, HEAD))
    out_SLKH = apply_rotary(x_SLKH, angles_LF)
    np.testing.assert_allclose(out_SLKH[:, :3], x_SLKH[:, :3], atol=1e-6)
    assert not np.allclose(out_SLKH[:, 4:], x_SLKH[:, 4:], atol=1e-3)
    np.testing.assert_allclose(
        jnp.linalg.norm(out_SLKH, axis=-1), jnp.linalg.norm(x_SLKH, axis=-1), rtol=1e-5
    )


def test_only_the_rotary_heads_turn():
    """Per-head angles: head k < rotary_heads turns exactly as with shared angles, the others
    are left as they are (content-only scores)."""
    angles_LF = grid_rotary_angles(ROWS, COLS, HEAD, leading=2)
    x_SLKH = jax.random.normal(_key(5), (2, angles_LF.shape[0], 4, HEAD))
    shared = apply_rotary(x_SLKH, angles_LF)
    per_head = apply_rotary(x_SLKH, heads_with_rotary(angles_LF, 4, rotary_heads=3))
    np.testing.assert_allclose(per_head[:, :, :3], shared[:, :, :3], atol=1e-6)
    np.testing.assert_array_equal(per_head[:, :, 3], x_SLKH[:, :, 3])
    assert not np.allclose(per_head[:, 3:, 2], x_SLKH[:, 3:, 2], atol=1e-3)
    with pytest.raises(ValueError, match="rotary_heads 5"):
        heads_with_rotary(angles_LF, 4, rotary_heads=5)
    with pytest.raises(ValueError, match="3 heads"):
        apply_rotary(x_SLKH[:, :, :3], heads_with_rotary(angles_LF, 4, rotary_heads=2))


def test_bad_rotary_inputs_are_named():
    with pytest.raises(ValueError, match="divisible by 4"):
        grid_rotary_angles(ROWS, COLS, 6)
    with pytest.raises(ValueError, match="do not match"):
        apply_rotary(jnp.zeros((1, 5, 1, HEAD)), grid_rotary_angles(ROWS, COLS, HEAD))
    attention = Attention(num_heads=2)
    x_SLD = jnp.zeros((1, 2, 2 * HEAD))
    cache = (jnp.zeros((1, 4, 2, HEAD)), jnp.zeros((1, 4, 2, HEAD)))
    params = attention.init(_key(2), x_SLD, causal=True)
    with pytest.raises(ValueError, match="without a KV cache"):
        attention.apply(
            params,
            x_SLD,
            causal=True,
            kv_cache=cache,
            cache_index=0,
            rotary_LF=jnp.zeros((2, HEAD // 2)),
        )


def _stack(**overrides) -> STTransformer:
    return STTransformer(num_layers=2, num_heads=2, mlp_dim=32, **overrides)


def test_stack_with_rotary_positions_sees_where_tokens_are():
    """Without positions the stack is permutation-equivariant over tokens; rotary angles in
    spatial attention break that, zero angles change nothing, and the scanned stack agrees."""
    x_BTND = jax.random.normal(_key(3), (2, 3, ROWS * COLS, 2 * HEAD))
    angles_NF = grid_rotary_angles(ROWS, COLS, HEAD)
    model = _stack()
    params = nn.meta.unbox(model.init(_key(4), x_BTND))["params"]
    apply = jax.jit(model.apply)
    plain = apply({"params": params}, x_BTND)
    np.testing.assert_allclose(
        apply({"params": params}, x_BTND, spatial_rotary_NF=jnp.zeros_like(angles_NF)),
        plain,
        atol=1e-5,
    )
    rotary = apply({"params": params}, x_BTND, spatial_rotary_NF=angles_NF)
    perm = np.random.default_rng(0).permutation(ROWS * COLS)
    permuted = apply({"params": params}, x_BTND[:, :, perm], spatial_rotary_NF=angles_NF)
    assert not np.allclose(permuted, rotary[:, :, perm], atol=1e-3)
    np.testing.assert_allclose(
        apply({"params": params}, x_BTND[:, :, perm])[:, :, np.argsort(perm)], plain, atol=1e-5
    )

    blocks = [params[f"block_{i}"] for i in range(2)]
    scan_params = {
        "final_norm": params["final_norm"],
        "blocks": jax.tree.map(lambda *leaves: jnp.stack(leaves), *blocks),
    }
    scanned = jax.jit(_stack(scan_layers=True).apply)(
        {"params": scan_params}, x_BTND, spatial_rotary_NF=angles_NF
    )
    np.testing.assert_allclose(scanned, rotary, atol=1e-5)
