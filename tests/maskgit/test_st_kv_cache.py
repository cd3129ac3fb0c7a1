"""The ST transformer's temporal KV cache: frame-by-frame calls equal one full causal call."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.nn import STTransformer, empty_kv_cache

B, T, N, D = 2, 5, 4, 32
LAYERS, HEADS = 2, 2
ATOL = 1e-5


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _x_BTND() -> jax.Array:
    return jax.random.normal(_key(0), (B, T, N, D))


def _empty(capacity: int = T):
    return empty_kv_cache(
        num_layers=LAYERS, batch=B, num_tokens=N, capacity=capacity, dim=D, num_heads=HEADS
    )


@functools.cache
def _setup(scan_layers: bool):
    """(params, jitted full call, jitted cached call) for one layer layout."""
    model = STTransformer(
        num_layers=LAYERS, num_heads=HEADS, mlp_dim=2 * D, causal_time=True, scan_layers=scan_layers
    )
    params = nn.meta.unbox(jax.jit(model.init)(_key(1), _x_BTND()))["params"]
    full = jax.jit(lambda x: model.apply({"params": params}, x))
    cached = jax.jit(
        lambda x, cache, index: model.apply(
            {"params": params}, x, kv_cache=cache, cache_index=index
        )
    )
    return params, full, cached


@pytest.mark.parametrize("scan_layers", [False, True])
def test_frame_by_frame_equals_full_call(scan_layers):
    """Each frame alone against the cache of the earlier ones gives the full causal output;
    a cache written at the wrong slot, or a mask that let a frame see empty slots, would not."""
    _, full, cached = _setup(scan_layers)
    x_BTND = _x_BTND()
    out_BTND = full(x_BTND)
    cache = _empty()
    for t in range(T):
        out_B1ND, cache = cached(x_BTND[:, t : t + 1], cache, t)
        assert out_B1ND.shape == (B, 1, N, D)
        np.testing.assert_allclose(out_B1ND[:, 0], out_BTND[:, t], atol=ATOL, err_msg=f"frame {t}")


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("prefill", [1, 3, T])
def test_prefill_then_single_frames_equals_full_call(scan_layers, prefill):
    """A prompt of several frames at once (queries at several positions, each causal) then one
    frame at a time; the cache may be larger than the sequence (unwritten slots stay hidden)."""
    _, full, cached = _setup(scan_layers)
    x_BTND = _x_BTND()
    out_BTND = full(x_BTND)
    out_BPND, cache = cached(x_BTND[:, :prefill], _empty(capacity=T + 3), 0)
    np.testing.assert_allclose(out_BPND, out_BTND[:, :prefill], atol=ATOL)
    for t in range(prefill, T):
        out_B1ND, cache = cached(x_BTND[:, t : t + 1], cache, t)
        np.testing.assert_allclose(out_B1ND[:, 0], out_BTND[:, t], atol=ATOL, err_msg=f"frame {t}")


@pytest.mark.parametrize("scan_layers", [False, True])
def test_cache_contents_do_not_depend_on_how_frames_were_fed(scan_layers):
    """The keys and values of frame t are the same whether written in one prefill or one frame
    at a time, every layer holds its own (not a copy of layer 0's), and slots past the last
    frame stay zero."""
    _, _, cached = _setup(scan_layers)
    x_BTND = _x_BTND()
    _, cache_all = cached(x_BTND, _empty(capacity=T + 2), 0)
    cache_steps = _empty(capacity=T + 2)
    for t in range(T):
        _, cache_steps = cached(x_BTND[:, t : t + 1], cache_steps, t)
    for all_LSCKH, steps_LSCKH in zip(cache_all, cache_steps):
        assert all_LSCKH.shape == (LAYERS, B * N, T + 2, HEADS, D // HEADS)
        np.testing.assert_allclose(all_LSCKH, steps_LSCKH, atol=ATOL)
        assert np.all(all_LSCKH[:, :, T:] == 0.0)
        assert np.all(np.any(all_LSCKH[:, :, :T] != 0.0, axis=(1, 3, 4)))
        assert not np.allclose(all_LSCKH[0], all_LSCKH[1])


def test_scan_and_loop_caches_agree():
    """Layer-stacked (scan) and per-layer (loop) params give the same cache and outputs."""
    loop_params, _, loop_cached = _setup(False)
    _, _, scan_cached = _setup(True)
    blocks = [loop_params[f"block_{i}"] for i in range(LAYERS)]
    scan_params = {
        "final_norm": loop_params["final_norm"],
        "blocks": jax.tree.map(lambda *leaves: jnp.stack(leaves), *blocks),
    }
    scan = STTransformer(
        num_layers=LAYERS, num_heads=HEADS, mlp_dim=2 * D, causal_time=True, scan_layers=True
    )
    x_BTND = _x_BTND()
    out_loop, cache_loop = loop_cached(x_BTND, _empty(), 0)
    out_scan, cache_scan = scan.apply({"params": scan_params}, x_BTND, kv_cache=_empty(), cache_index=0)
    np.testing.assert_allclose(out_loop, out_scan, atol=ATOL)
    for loop_leaf, scan_leaf in zip(cache_loop, cache_scan):
        np.testing.assert_allclose(loop_leaf, scan_leaf, atol=ATOL)
    del scan_cached


def test_cache_needs_causal_time():
    """A non-causal stack cannot be decoded frame by frame: asking for it must fail loudly."""
    model = STTransformer(num_layers=1, num_heads=HEADS, mlp_dim=2 * D, causal_time=False)
    x_BTND = _x_BTND()
    params = model.init(_key(1), x_BTND)
    with pytest.raises(ValueError, match="causal"):
        model.apply(params, x_BTND[:, :1], kv_cache=_empty(), cache_index=0)
