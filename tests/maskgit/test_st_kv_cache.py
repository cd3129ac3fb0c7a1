"""The ST transformer's temporal KV cache: frame-by-frame calls equal one full causal call."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.nn import STTransformer, empty_kv_cache
from tests.dynamics.tiny import random_params

B, T, N, D = 2, 5, 4, 32
LAYERS, HEADS = 2, 2
CAPACITY = T + 2  # larger than the sequence: the unwritten slots must stay invisible
ATOL = 1e-5


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _x_BTND() -> jax.Array:
    return jax.random.normal(_key(0), (B, T, N, D))


def _empty():
    return empty_kv_cache(
        num_layers=LAYERS, batch=B, num_tokens=N, capacity=CAPACITY, dim=D, num_heads=HEADS
    )


def _model(scan_layers: bool, causal_time: bool = True) -> STTransformer:
    return STTransformer(
        num_layers=LAYERS,
        num_heads=HEADS,
        mlp_dim=2 * D,
        causal_time=causal_time,
        scan_layers=scan_layers,
    )


def _cached_apply(model: STTransformer):
    return jax.jit(
        lambda params, x, cache, index: model.apply(
            {"params": params}, x, kv_cache=cache, cache_index=index
        )
    )


@functools.cache
def _setup(scan_layers: bool):
    """(params, full output [B, T, N, D], jitted cached call) for one layer layout."""
    model = _model(scan_layers)
    params = random_params(model, _x_BTND())
    out_BTND = jax.jit(model.apply)({"params": params}, _x_BTND())
    return params, out_BTND, _cached_apply(model)


@functools.cache
def _frame_by_frame(scan_layers: bool):
    """Outputs [B, T, N, D] and the final cache of feeding the T frames one at a time."""
    params, _, cached = _setup(scan_layers)
    x_BTND, cache, outputs = _x_BTND(), _empty(), []
    for t in range(T):
        out_B1ND, cache = cached(params, x_BTND[:, t : t + 1], cache, t)
        outputs.append(out_B1ND)
    return jnp.concatenate(outputs, axis=1), cache


@pytest.mark.parametrize("scan_layers", [False, True])
def test_frame_by_frame_equals_full_call(scan_layers):
    """Each frame alone against the cache of the earlier ones gives the full causal output; a
    cache written at the wrong slot or a mask that let a frame see empty slots would not."""
    _, out_BTND, _ = _setup(scan_layers)
    steps_BTND, cache = _frame_by_frame(scan_layers)
    np.testing.assert_allclose(steps_BTND, out_BTND, atol=ATOL)
    for cache_LSCKH in cache:
        assert cache_LSCKH.shape == (LAYERS, B * N, CAPACITY, HEADS, D // HEADS)
        assert np.all(cache_LSCKH[:, :, T:] == 0.0)  # slots past the last frame untouched
        assert np.all(np.any(cache_LSCKH[:, :, :T] != 0.0, axis=(1, 3, 4)))
        # Every layer holds its own keys and values, not a copy of layer 0's.
        assert not np.allclose(cache_LSCKH[0], cache_LSCKH[1])


@pytest.mark.parametrize("scan_layers", [False, True])
def test_prefill_then_single_frames_equals_full_call(scan_layers):
    """A prompt of 3 frames at once (3 queries, causal among themselves), then one frame at a
    time: same outputs as the full call, and the same cache as feeding every frame alone."""
    params, out_BTND, cached = _setup(scan_layers)
    x_BTND, prefill = _x_BTND(), 3
    out_BPND, cache = cached(params, x_BTND[:, :prefill], _empty(), 0)
    np.testing.assert_allclose(out_BPND, out_BTND[:, :prefill], atol=ATOL)
    for t in range(prefill, T):
        out_B1ND, cache = cached(params, x_BTND[:, t : t + 1], cache, t)
        np.testing.assert_allclose(out_B1ND[:, 0], out_BTND[:, t], atol=ATOL, err_msg=f"frame {t}")
    _, steps_cache = _frame_by_frame(scan_layers)
    for prefill_LSCKH, steps_LSCKH in zip(cache, steps_cache):
        np.testing.assert_allclose(prefill_LSCKH, steps_LSCKH, atol=ATOL)


def test_scan_and_loop_caches_agree():
    """The same weights stacked for nn.scan or kept per layer give the same output and cache:
    a scan that threaded one layer's cache into another's slot would not."""
    loop_params, _, loop_cached = _setup(False)
    blocks = [loop_params[f"block_{i}"] for i in range(LAYERS)]
    scan_params = {
        "final_norm": loop_params["final_norm"],
        "blocks": jax.tree.map(lambda *leaves: jnp.stack(leaves), *blocks),
    }
    _, _, scan_cached = _setup(True)
    x_B3ND = _x_BTND()[:, :3]
    out_loop, cache_loop = loop_cached(loop_params, x_B3ND, _empty(), 0)
    out_scan, cache_scan = scan_cached(scan_params, x_B3ND, _empty(), 0)
    np.testing.assert_allclose(out_loop, out_scan, atol=ATOL)
    for loop_LSCKH, scan_LSCKH in zip(cache_loop, cache_scan):
        np.testing.assert_allclose(loop_LSCKH, scan_LSCKH, atol=ATOL)


def test_cache_needs_causal_time():
    """A stack with non-causal time cannot be decoded frame by frame: it must fail loudly."""
    model = _model(scan_layers=False, causal_time=False)
    x_B1ND = _x_BTND()[:, :1]
    params = jax.eval_shape(model.init, _key(1), x_B1ND)
    with pytest.raises(ValueError, match="causal"):
        jax.eval_shape(
            functools.partial(model.apply, cache_index=0), params, x_B1ND, kv_cache=_empty()
        )
