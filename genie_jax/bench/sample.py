"""`genie bench sample`: frame-by-frame MaskGIT rollout speed, KV cache vs full recompute.

Both rollouts run in the same process on the same model, prompt, actions and rng, after a
warm-up run of each (compilation excluded; the full-recompute path compiles once per prefix
length, all during warm-up). Frames per second counts generated frames (batch x frames after
the prompt). The cached and full rollouts must also agree token for token; the result says so.
`compare_full=False` times the cached rollout alone (the full path's compiles take minutes at
case-study size).
"""

import time

import jax
import ml_collections
import numpy as np

from genie_jax.nn.attention import attention_kernels
from genie_jax.world import World, load_world, random_world

TARGET_SPEEDUP = 4.0  # issue #3: the cache must make 16-frame rollouts at least 4x faster


def _timed(fn, repeats: int) -> tuple[float, jax.Array]:
    result = jax.block_until_ready(fn())  # warm-up: compiles
    tic = time.perf_counter()
    for _ in range(repeats):
        result = jax.block_until_ready(fn())
    return (time.perf_counter() - tic) / repeats, result


def bench_sample(
    config: ml_collections.ConfigDict,
    *,
    workdir: str | None = None,
    batch: int = 1,
    num_frames: int = 16,
    prompt_frames: int = 1,
    repeats: int = 2,
    seed: int = 0,
    compare_full: bool = True,
    attention: str = "auto",
) -> dict:
    """Times both rollouts of the config's dynamics model (trained params from `workdir`);
    `attention` forces an attention kernel (`attention_kernels`)."""
    world: World = load_world(workdir) if workdir else random_world(config, seed=seed)
    num_tokens = world.model.tokenizer_config.num_tokens
    vocab = world.model.tokenizer_config.codebook_size
    rng = np.random.default_rng(seed)
    prompt_BPN = rng.integers(0, vocab, (batch, prompt_frames, num_tokens), dtype=np.int32)
    actions_BA = rng.integers(0, world.num_actions, (batch, num_frames - 1), dtype=np.int32)
    key = jax.random.key(seed)
    params = world.dynamics_params
    sampler = world.sampler

    def cached():
        return sampler.rollout_cached(params, prompt_BPN, actions_BA, key, num_frames=num_frames)

    def full():
        return sampler.rollout_full(params, prompt_BPN, actions_BA, key, num_frames=num_frames)

    with attention_kernels(attention):
        cached_s, cached_tokens = _timed(cached, repeats)
        full_s, full_tokens = _timed(full, repeats) if compare_full else (None, None)
    generated = batch * (num_frames - prompt_frames)
    dynamics = world.model.dynamics_config
    speedup = full_s / cached_s if compare_full else None
    device = jax.devices()[0]
    return {
        "benchmark": "sample",
        "device": f"{device.platform}:{device.device_kind}",
        "device_count": jax.device_count(),
        "params": "trained" if workdir else "random init",
        "batch": batch,
        "num_frames": num_frames,
        "prompt_frames": prompt_frames,
        "generated_frames": generated,
        "maskgit_steps": sampler.sampling.steps,
        "tokens_per_frame": num_tokens,
        "dynamics": {
            "layers": dynamics.num_layers,
            "dim": dynamics.dim,
            "heads": dynamics.num_heads,
            "action_mode": dynamics.action_mode,
            "dtype": dynamics.dtype,
        },
        "attention": attention,
        "repeats": repeats,
        "cached_s_per_rollout": cached_s,
        "cached_frames_per_s": generated / cached_s,
        "full_recompute_s_per_rollout": full_s,
        "full_recompute_frames_per_s": generated / full_s if compare_full else None,
        "speedup": speedup,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": speedup >= TARGET_SPEEDUP if compare_full else None,
        "identical_tokens": (
            bool(np.array_equal(np.asarray(cached_tokens), np.asarray(full_tokens)))
            if compare_full
            else None
        ),
    }
