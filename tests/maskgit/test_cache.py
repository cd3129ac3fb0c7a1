"""KV-cached rollouts of the dynamics model equal full-recompute rollouts, token for token."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.dynamics import ACTION_MODES, frame_actions
from genie_jax.maskgit import CachedState, Sampler, SamplingConfig, check_actions
from tests.dynamics.tiny import (
    MAX_FRAMES,
    A,
    N,
    V,
    key,
    random_actions,
    random_params,
    random_tokens,
    tiny_dynamics,
)

B, P, T = 2, 2, 4  # batch, prompt frames, rollout frames (< MAX_FRAMES: a short cache)
# Each token layout once and each layer form once: the cache lives in `Attention` under both
# forms, and the layout (prepended action token or not) is independent of the form.
CONFIGS = [("add", True), ("prepend", False)]


@functools.cache
def _setup(action_mode: str, scan_layers: bool):
    """(model, params, sampler) for one action mode and layer layout."""
    model = tiny_dynamics(action_mode, scan_layers)
    params = random_params(model, jnp.zeros((B, T, N), jnp.int32), jnp.zeros((B, T), jnp.int32))
    return model, params, Sampler(model, SamplingConfig(steps=5))


def _prompt_BPN() -> np.ndarray:
    return random_tokens((B, P, N), seed=1)


def _actions_BA() -> np.ndarray:
    return random_actions((B, T - 1), seed=2)


@pytest.mark.parametrize(("action_mode", "scan_layers"), CONFIGS)
def test_cached_rollout_equals_full_rollout(action_mode, scan_layers):
    """Same rng, same tokens: the cache changes the cost, never the samples. The prompt comes
    back unchanged and every generated token is a vocabulary id (no mask id left)."""
    _, params, sampler = _setup(action_mode, scan_layers)
    prompt_BPN, actions_BA = _prompt_BPN(), _actions_BA()
    cached_BTN = sampler.rollout_cached(params, prompt_BPN, actions_BA, key(7), num_frames=T)
    full_BTN = sampler.rollout_full(params, prompt_BPN, actions_BA, key(7), num_frames=T)
    assert cached_BTN.shape == full_BTN.shape == (B, T, N)
    np.testing.assert_array_equal(cached_BTN, full_BTN)
    np.testing.assert_array_equal(cached_BTN[:, :P], prompt_BPN)
    assert np.all((np.asarray(cached_BTN) >= 0) & (np.asarray(cached_BTN) < V))
    # The samples are real draws (not, say, NaN logits decoded to zeros on both paths).
    other_BTN = sampler.rollout_cached(params, prompt_BPN, actions_BA, key(8), num_frames=T)
    assert not np.array_equal(other_BTN[:, P:], cached_BTN[:, P:])
    assert len(np.unique(cached_BTN[:, P:])) > V // 4


@pytest.mark.parametrize("action_mode", ACTION_MODES)
def test_cached_logits_equal_full_forward_logits(action_mode):
    """A prefill of the prompt, then one frame at a time against the cache, gives the logits of
    one full causal forward pass: positions (time offset), the prepended action token and each
    layer's cache slot all line up. (The scanned layout's cache is checked at the ST level in
    test_st_kv_cache.py and end to end by the rollout test above.)"""
    model, params, _ = _setup(action_mode, False)
    tokens_BTN = random_tokens((B, T, N), seed=3)
    frame_actions_BT = frame_actions(jnp.asarray(_actions_BA()), A)

    variables = {"params": params}
    full_BTNV = jax.jit(model.apply)(variables, tokens_BTN, frame_actions_BT)

    @jax.jit
    def cached_apply(tokens_BtN, frame_actions_Bt, cache, index):
        return model.apply(
            variables, tokens_BtN, frame_actions_Bt, kv_cache=cache, cache_index=index
        )

    logits_BPNV, cache = cached_apply(
        tokens_BTN[:, :P], frame_actions_BT[:, :P], model.empty_cache(B, T), 0
    )
    frames = [logits_BPNV]
    for t in range(P, T):
        logits_B1NV, cache = cached_apply(
            tokens_BTN[:, t : t + 1], frame_actions_BT[:, t : t + 1], cache, t
        )
        frames.append(logits_B1NV)
    cached_BTNV = jnp.concatenate(frames, axis=1)
    assert cached_BTNV.shape == (B, T, N, V)
    np.testing.assert_allclose(cached_BTNV, full_BTNV, atol=1e-5, rtol=1e-5)


def test_check_actions_accepts_in_range_integers():
    """Valid actions pass through as int32, unchanged."""
    actions = np.array([[0, A - 1], [3, 1]], np.int64)
    checked = check_actions(actions, A)
    assert checked.dtype == np.int32
    np.testing.assert_array_equal(checked, actions)


@pytest.mark.parametrize("bad", [A, A + 3, -1])
def test_check_actions_names_out_of_range_actions(bad):
    """Action A is the "no action" id of frame 0 and others index past the embedding table
    (NaNs, or a wrapped -1): each must be refused, naming the bad value and the valid range."""
    actions = np.array([[0, bad], [1, 2]])
    with pytest.raises(ValueError, match=rf"\[{bad}\] outside 0\.\.{A - 1}"):
        check_actions(actions, A)


def test_check_actions_rejects_floats():
    """A float action array (e.g. LAM latents passed by mistake) must not be truncated to ints."""
    with pytest.raises(ValueError, match="must be integers"):
        check_actions(np.array([[0.0, 1.5]]), A)


@pytest.mark.parametrize("rollout", ["rollout_cached", "rollout_full"])
@pytest.mark.parametrize("bad", [A, -1])
def test_rollout_rejects_out_of_range_actions(rollout, bad):
    """Both rollout paths validate the actions before running anything."""
    _, params, sampler = _setup("add", False)
    actions_BA = _actions_BA()
    actions_BA[1, -1] = bad
    with pytest.raises(ValueError, match=rf"latent action\(s\) \[{bad}\]"):
        getattr(sampler, rollout)(params, _prompt_BPN(), actions_BA, key(0), num_frames=T)


@pytest.mark.parametrize("rollout", ["rollout_cached", "rollout_full"])
@pytest.mark.parametrize(
    "actions_shape",
    [(B, T), (B, T - 2), (B + 1, T - 1), (T - 1,)],
    ids=["per_frame_not_per_transition", "too_few", "wrong_batch", "no_batch_axis"],
)
def test_rollout_rejects_wrong_action_shape(rollout, actions_shape):
    """A T-frame rollout needs exactly T-1 transition actions per sample; passing per-frame
    actions (T) is the classic misalignment and must fail, not shift the actions by one."""
    _, params, sampler = _setup("add", False)
    actions = random_actions(actions_shape)
    with pytest.raises(ValueError, match="one per transition"):
        getattr(sampler, rollout)(params, _prompt_BPN(), actions, key(0), num_frames=T)


@pytest.mark.parametrize(
    ("prompt_frames", "num_frames"),
    [(0, T), (T, T), (T + 1, T), (P, MAX_FRAMES + 1)],
    ids=["empty_prompt", "nothing_to_generate", "prompt_too_long", "past_max_frames"],
)
def test_rollout_rejects_bad_lengths(prompt_frames, num_frames):
    """The prompt must hold 1..num_frames-1 frames and the rollout fit in max_frames (position
    embeddings stop there)."""
    _, params, sampler = _setup("add", False)
    prompt = random_tokens((B, prompt_frames, N))
    actions = random_actions((B, num_frames - 1))
    with pytest.raises(ValueError, match="max_frames"):
        sampler.rollout_cached(params, prompt, actions, key(0), num_frames=num_frames)


def test_step_refuses_a_full_cache():
    """Stepping past the cache's capacity would write out of bounds (clamped: overwriting the
    last frame); it must raise instead."""
    model, params, sampler = _setup("add", False)
    state = CachedState(cache=model.empty_cache(B, P), next_frame=P)
    with pytest.raises(ValueError, match="is full"):
        sampler.step(params, state, jnp.zeros((B,), jnp.int32), key(0))


@pytest.mark.parametrize("bad", [A, -1, A + 1])
def test_step_refuses_an_action_outside_the_codebook(bad):
    """`step` is the interactive entry point: an out-of-range action would silently index the
    "no action" row (A, or -1 wrapping to it) or past the table (an all-zero frame)."""
    model, params, sampler = _setup("add", False)
    state = CachedState(cache=model.empty_cache(B, P + 1), next_frame=P)
    with pytest.raises(ValueError, match=rf"\[{bad}\] outside 0\.\.{A - 1}"):
        sampler.step(params, state, jnp.full((B,), bad, jnp.int32), key(0))
