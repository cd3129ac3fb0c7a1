"""The KV cache must make a new frame cost one frame's work, whatever its index.

Counted in compiled FLOPs (XLA's cost analysis), not timed: the full-recompute decode of the
last frame of a 16-frame rollout runs all 16 frames at every MaskGIT step, the cached decode
one frame (plus one more pass to append it to the cache)."""

import jax
import jax.numpy as jnp

from genie_jax.dynamics import DynamicsConfig, DynamicsModel
from genie_jax.maskgit import Sampler, SamplingConfig

T = 16


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"])


def test_cached_frame_costs_one_frame_full_recompute_costs_the_prefix():
    config = DynamicsConfig(num_layers=2, dim=64, num_heads=4, max_frames=T)
    model = DynamicsModel(config, vocab_size=64, num_tokens=16, num_actions=6)
    tokens_BTN = jnp.zeros((1, T, 16), jnp.int32)
    actions_BT = jnp.zeros((1, T), jnp.int32)
    params = model.init(jax.random.key(0, impl="rbg"), tokens_BTN, actions_BT)["params"]
    sampler = Sampler(model, SamplingConfig(steps=4))
    key = jax.random.key(0)

    cached = _flops(
        sampler._next_frame.lower(
            params, model.empty_cache(1, T), jnp.zeros((1,), jnp.int32), T - 1, key
        ).compile()
    )

    def full(frame: int) -> float:
        context_BtN = tokens_BTN[:, :frame]
        lowered = sampler._full_frame.lower(params, context_BtN, actions_BT[:, : frame + 1], key)
        return _flops(lowered.compile())

    first, last = full(1), full(T - 1)
    assert last > 0.6 * T * first / 2  # the reference grows with the prefix (2 -> 16 frames)
    assert last / cached > 0.5 * T, (last, cached)  # the cache removes that growth
    assert cached < 1.5 * first  # and costs about what a 2-frame prefix costs
