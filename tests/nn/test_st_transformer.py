"""ST transformer, attention, positional embedding and patchify (Genie §2)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.nn import (
    Attention,
    FactorizedPositionEmbedding,
    STTransformer,
    patchify,
    unpatchify,
)

B, T, N, D = 2, 4, 4, 16
HEADS, MLP_DIM, LAYERS = 2, 32, 2


def _key(seed: int) -> jax.Array:
    # The "rbg" generator compiles about 5x faster than threefry on CPU: init dominates runtime.
    return jax.random.key(seed, impl="rbg")


def _model(**overrides) -> STTransformer:
    kwargs = {"num_layers": LAYERS, "num_heads": HEADS, "mlp_dim": MLP_DIM}
    kwargs.update(overrides)
    return STTransformer(**kwargs)


def _x(batch: int = B, seed: int = 0) -> jax.Array:
    return jax.random.normal(_key(seed), (batch, T, N, D), jnp.float32)


def _params(model: nn.Module, x: jax.Array) -> dict:
    return nn.meta.unbox(jax.jit(model.init)(_key(1), x))["params"]


@functools.cache
def _setup(**overrides):
    """(model, params, jitted apply) for one configuration, built once per test session."""
    model = _model(**overrides)
    return model, _params(model, _x()), jax.jit(model.apply)


@functools.cache
def _dependency(**overrides) -> np.ndarray:
    """|d out[t, n] / d in[t', m]| summed over the feature axes: an array [T, N, T', M]."""
    model, params, _ = _setup(**overrides)

    def f(x_TND):
        return model.apply({"params": params}, x_TND[None])[0]

    jac = jax.jit(jax.jacrev(f))(_x(batch=1)[0])  # [T, N, D, T', M, D]
    return np.asarray(jnp.sum(jnp.abs(jac), axis=(2, 5)))


# -- shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_jit", [False, True])
def test_output_shape_dtype_finite(use_jit):
    model, params, apply_jit = _setup()
    out = (apply_jit if use_jit else model.apply)({"params": params}, _x())
    assert out.shape == (B, T, N, D)
    assert out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    # The final LayerNorm: zero mean and unit variance per token.
    np.testing.assert_allclose(np.mean(out, axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(out, axis=-1), 1.0, atol=1e-3)


def test_jit_matches_eager():
    model, params, apply_jit = _setup()
    eager = model.apply({"params": params}, _x())
    np.testing.assert_allclose(eager, apply_jit({"params": params}, _x()), atol=1e-5)


# -- causality ---------------------------------------------------------------------------------


def test_temporal_causality_by_gradient():
    dep_TNTM = _dependency(causal_time=True)
    for t in range(T):
        # Nothing at time t depends on any token of a later frame: exactly zero.
        assert np.all(dep_TNTM[t, :, t + 1 :] == 0.0), f"frame {t} sees the future"
        # Every token at time t depends on every token of frames <= t (spatial then temporal
        # mixing over two layers).
        assert np.all(dep_TNTM[t, :, : t + 1] > 0.0), f"frame {t} ignores its past"


def test_non_causal_time_sees_the_future():
    """The gradient test above can detect a missing mask."""
    dep_TNTM = _dependency(causal_time=False)
    for t in range(T - 1):
        assert np.all(dep_TNTM[t, :, t + 1 :] > 0.0)


def test_spatial_attention_mixes_tokens_within_a_frame():
    # One layer: the only path from token m to token n != m of the same frame is spatial
    # attention (temporal attention and the MLP act per token position).
    dep_TNTM = _dependency(num_layers=1)
    for t in range(T):
        for n in range(N):
            others = [m for m in range(N) if m != n]
            assert np.all(dep_TNTM[t, n, t, others] > 0.0)
            # ...and never through a future frame, at any position.
            assert np.all(dep_TNTM[t, n, t + 1 :] == 0.0)


def test_batch_elements_are_independent():
    _, params, apply = _setup()
    x = _x()
    out = apply({"params": params}, x)
    x_changed = x.at[1].set(_x(batch=1, seed=5)[0])
    out_changed = apply({"params": params}, x_changed)
    np.testing.assert_array_equal(out[0], out_changed[0])
    assert not np.allclose(out[1], out_changed[1])


# -- scan / remat ------------------------------------------------------------------------------


def _stack_layers(loop_params: dict) -> dict:
    """`block_0..block_{L-1}` -> `blocks` with a leading layer axis (the nn.scan layout)."""
    blocks = [loop_params[f"block_{i}"] for i in range(LAYERS)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves, axis=0), *blocks)
    rest = {k: v for k, v in loop_params.items() if not k.startswith("block_")}
    return {**rest, "blocks": stacked}


@pytest.mark.parametrize("remat_policy", ["none", "full"])
def test_scan_equals_loop(remat_policy):
    x = _x()
    _, loop_params, loop_apply = _setup(remat_policy=remat_policy)
    scan = _model(scan_layers=True, remat_policy=remat_policy)
    scan_params = _stack_layers(loop_params)

    # Same layout as the scanned model's own init: same tree, leading axis of size L.
    scan_init = nn.meta.unbox(jax.eval_shape(scan.init, _key(1), x))["params"]
    assert jax.tree.structure(scan_init) == jax.tree.structure(scan_params)
    for ours, theirs in zip(jax.tree.leaves(scan_params), jax.tree.leaves(scan_init), strict=False):
        assert ours.shape == theirs.shape
    assert all(leaf.shape[0] == LAYERS for leaf in jax.tree.leaves(scan_init["blocks"]))

    out_loop = loop_apply({"params": loop_params}, x)
    out_scan = jax.jit(scan.apply)({"params": scan_params}, x)
    np.testing.assert_allclose(out_loop, out_scan, atol=1e-5)
    # The layers really differ, so a scan that repeated one layer would fail.
    up_LDF = scan_params["blocks"]["mlp"]["up"]["kernel"]
    assert not np.allclose(up_LDF[0], up_LDF[1])


def _loss_and_grad(model: STTransformer, params: dict, x: jax.Array, w: jax.Array):
    def loss(p):
        return jnp.sum(model.apply({"params": p}, x) * w)

    return jax.jit(jax.value_and_grad(loss))(params)


@functools.cache
def _no_remat_reference():
    x = _x()
    w = jax.random.normal(_key(7), x.shape)
    plain, params, _ = _setup()
    return x, w, params, _loss_and_grad(plain, params, x, w)


@pytest.mark.parametrize("remat_policy", ["full", "dots", "dots_no_batch"])
def test_remat_equals_no_remat(remat_policy):
    x, w, params, (loss_plain, grad_plain) = _no_remat_reference()
    remat = _model(remat_policy=remat_policy)
    loss_remat, grad_remat = _loss_and_grad(remat, params, x, w)
    np.testing.assert_allclose(loss_plain, loss_remat, atol=1e-5)
    assert jax.tree.structure(grad_plain) == jax.tree.structure(grad_remat)
    for g_plain, g_remat in zip(
        jax.tree.leaves(grad_plain), jax.tree.leaves(grad_remat), strict=False
    ):
        np.testing.assert_allclose(g_plain, g_remat, atol=1e-5)
    assert any(np.any(g != 0) for g in jax.tree.leaves(grad_plain))


def test_unknown_remat_policy_raises():
    with pytest.raises(ValueError, match="remat_policy"):
        _model(remat_policy="everything").init(_key(0), _x())


# -- dtypes and options ------------------------------------------------------------------------


def test_bfloat16_compute_keeps_fp32_params():
    model, params, apply = _setup(dtype=jnp.bfloat16)
    x = _x()
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    out = apply({"params": params}, x)
    assert out.shape == (B, T, N, D)
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    # The matmuls really run in bf16 (the dtype field is not ignored).
    jaxpr = jax.make_jaxpr(model.apply)({"params": params}, x)
    dot_dtypes = {
        v.aval.dtype
        for eqn in _all_eqns(jaxpr.jaxpr)
        if eqn.primitive.name == "dot_general"
        for v in eqn.invars
    }
    assert jnp.dtype(jnp.bfloat16) in dot_dtypes
    assert jnp.dtype(jnp.float32) not in dot_dtypes


def _all_eqns(jaxpr):
    """Every equation of a jaxpr, including those of nested jaxprs (pjit, remat, scan)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from _all_eqns(sub)


def test_qk_norm_adds_params_and_normalizes():
    x = _x()
    _, params, apply = _setup(qk_norm=True)
    for block in ("block_0", "block_1"):
        for attn in ("spatial_attention", "temporal_attention"):
            assert {"q_norm", "k_norm"} <= set(params[block][attn])
    _, plain_params, plain_apply = _setup()
    assert "q_norm" not in plain_params["block_0"]["spatial_attention"]

    out = apply({"params": params}, x)
    assert np.all(np.isfinite(out))

    # With RMS-normalized queries, scaling the query projection changes nothing.
    def scale_queries(p):
        return jax.tree_util.tree_map_with_path(
            lambda path, a: a.at[:, 0].multiply(10.0) if _is_qkv(path) else a, p
        )

    out_scaled = apply({"params": scale_queries(params)}, x)
    np.testing.assert_allclose(out, out_scaled, atol=1e-4)
    out_plain = plain_apply({"params": plain_params}, x)
    out_plain_scaled = plain_apply({"params": scale_queries(plain_params)}, x)
    assert not np.allclose(out_plain, out_plain_scaled, atol=1e-3)


def _is_qkv(path) -> bool:
    """The fused [D, 3, K, Dh] projection, whether stored as `qkv` or `qkv/kernel`."""
    return any(getattr(key, "key", None) == "qkv" for key in path)


def _leaf(params: dict, name: str) -> jax.Array:
    leaf = params[name]
    return leaf["kernel"] if isinstance(leaf, dict) else leaf


def test_attention_rejects_width_not_divisible_by_heads():
    x_SLD = jnp.ones((2, 4, 16))
    with pytest.raises(ValueError, match="16 is not divisible by 3 heads"):
        Attention(num_heads=3).init(_key(0), x_SLD, causal=False)


def test_attention_causal_flag():
    x_SLD = jax.random.normal(_key(0), (1, 4, 16))
    attn = Attention(num_heads=2)
    params = nn.meta.unbox(attn.init(_key(1), x_SLD, causal=True))["params"]
    causal = attn.apply({"params": params}, x_SLD, causal=True)
    full = attn.apply({"params": params}, x_SLD, causal=False)
    # The last query sees every key either way; earlier ones differ.
    np.testing.assert_allclose(causal[:, -1], full[:, -1], atol=1e-6)
    assert not np.allclose(causal[:, 0], full[:, 0])
    # The first query under the causal mask attends only to itself: its output is v_0 @ W_out.
    v0_KH = jnp.einsum("d,dkh->kh", x_SLD[0, 0], _leaf(params, "qkv")[:, 2])
    np.testing.assert_allclose(
        causal[0, 0], jnp.einsum("kh,khd->d", v0_KH, _leaf(params, "out")), atol=1e-5
    )


# -- positional encoding -----------------------------------------------------------------------


def test_stack_is_permutation_equivariant_over_tokens():
    """No positions are added inside the blocks: permuting tokens permutes the output."""
    _, params, apply = _setup()
    x = _x()
    perm = np.array([2, 0, 3, 1])
    out = apply({"params": params}, x)
    out_perm = apply({"params": params}, x[:, :, perm])
    np.testing.assert_allclose(out_perm, out[:, :, perm], atol=1e-5)


def test_position_embedding_time_offset_slices_rows():
    max_frames, frames = 8, 3
    x = jnp.zeros((2, frames, N, D))
    posemb = FactorizedPositionEmbedding(max_frames=max_frames, num_tokens=N)
    params = nn.meta.unbox(posemb.init(_key(0), x))["params"]
    time_TD, space_ND = np.asarray(params["time"]), np.asarray(params["space"])
    assert time_TD.shape == (max_frames, D) and space_ND.shape == (N, D)
    apply = jax.jit(lambda off: posemb.apply({"params": params}, x, time_offset=off))
    for offset in (0, 2, max_frames - frames):
        expected = time_TD[offset : offset + frames, None, :] + space_ND[None, :, :]
        out_static = posemb.apply({"params": params}, x, time_offset=offset)
        np.testing.assert_allclose(out_static, np.broadcast_to(expected, x.shape), atol=1e-7)
        # A traced offset (as in frame-by-frame decoding under jit) slices the same rows.
        np.testing.assert_allclose(apply(jnp.int32(offset)), out_static, atol=1e-7)
    # Distinct offsets give distinct positions.
    assert not np.allclose(
        posemb.apply({"params": params}, x, time_offset=0),
        posemb.apply({"params": params}, x, time_offset=1),
    )


def test_position_embedding_bad_inputs():
    posemb = FactorizedPositionEmbedding(max_frames=4, num_tokens=N)
    with pytest.raises(ValueError, match=f"expected {N} tokens per frame"):
        posemb.init(_key(0), jnp.zeros((1, 2, N + 1, D)))
    params = posemb.init(_key(0), jnp.zeros((1, 2, N, D)))
    with pytest.raises(ValueError, match="max_frames 4"):
        posemb.apply(params, jnp.zeros((1, 2, N, D)), time_offset=3)
    with pytest.raises(ValueError, match="max_frames 4"):
        posemb.apply(params, jnp.zeros((1, 5, N, D)))


# -- patchify ----------------------------------------------------------------------------------


def test_patchify_round_trip_and_layout():
    patch = 4
    video = jax.random.uniform(_key(0), (2, 3, 16, 12, 3))
    patches = patchify(video, patch)
    assert patches.shape == (2, 3, 4 * 3, patch * patch * 3)
    np.testing.assert_array_equal(unpatchify(patches, patch, 4, 3), video)
    # Tokens in row-major grid order; each token is its p x p x C block, flattened.
    for h, w in [(0, 0), (0, 1), (1, 0), (3, 2)]:
        n = h * 3 + w
        block = video[1, 2, h * patch : (h + 1) * patch, w * patch : (w + 1) * patch]
        np.testing.assert_array_equal(patches[1, 2, n], block.reshape(-1))


def test_patchify_rejects_non_divisible_frames():
    with pytest.raises(ValueError, match="not divisible by patch size 4"):
        patchify(jnp.zeros((1, 1, 18, 16, 3)), 4)
    with pytest.raises(ValueError, match="not divisible by patch size 4"):
        patchify(jnp.zeros((1, 1, 16, 14, 3)), 4)
