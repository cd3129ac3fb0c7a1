"""DynamicsModel: output shapes and dtypes, the mask token, input and config validation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.dynamics import ACTION_MODES, DynamicsConfig, frame_actions
from tests.dynamics.tiny import A, N, V, random_actions, random_params, random_tokens, tiny_dynamics

B, T = 2, 3


def _inputs(tokens_shape=(B, T, N), actions_shape=(B, T)):
    return jnp.zeros(tokens_shape, jnp.int32), jnp.zeros(actions_shape, jnp.int32)


@pytest.mark.parametrize("action_mode", ACTION_MODES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logits_are_float32_b_t_n_v(action_mode, dtype):
    """Logits [B, T, N, V] in fp32 whatever the compute dtype: a bf16 softmax cross-entropy
    would lose precision. With a prepended action token the output still has N tokens."""
    model = tiny_dynamics(action_mode, dtype=dtype)
    params = jax.eval_shape(model.init, jax.random.key(0), *_inputs())
    logits = jax.eval_shape(model.apply, params, *_inputs())
    assert logits.shape == (B, T, N, V)
    assert logits.dtype == jnp.float32


@functools.cache
def _logits_in(dtype: str) -> np.ndarray:
    model = tiny_dynamics("add", dtype=dtype)
    params = random_params(model, *_inputs())
    tokens_BTN = random_tokens((B, T, N)).copy()
    tokens_BTN[:, 1:, ::2] = model.mask_id  # the mask token is a valid input
    frame_actions_BT = frame_actions(random_actions((B, T - 1)), A)
    logits = jax.jit(model.apply)({"params": params}, tokens_BTN, frame_actions_BT)
    return np.asarray(logits)


def test_bfloat16_logits_track_float32_logits():
    """Same params, bf16 compute: fp32 logits close to the fp32 model's (bf16 has ~3 digits),
    and finite even where tokens are the mask id V."""
    logits_bf16, logits_fp32 = _logits_in("bfloat16"), _logits_in("float32")
    assert logits_bf16.dtype == np.float32
    assert np.all(np.isfinite(logits_bf16))
    scale = np.abs(logits_fp32).max()
    assert np.abs(logits_bf16 - logits_fp32).max() < 0.05 * scale
    assert not np.array_equal(logits_bf16, logits_fp32)  # bf16 really ran


def test_mask_id_and_tokens_per_frame():
    """The mask id is V (one past the vocabulary); prepend mode adds one position per frame,
    and the KV cache is sized for it."""
    add, prepend = tiny_dynamics("add"), tiny_dynamics("prepend")
    assert add.mask_id == prepend.mask_id == V
    assert add.tokens_per_frame == N and prepend.tokens_per_frame == N + 1
    k_cache, v_cache = prepend.empty_cache(B, 4)
    assert k_cache.shape == v_cache.shape == (2, B * (N + 1), 4, 2, 16)
    assert add.empty_cache(B)[0].shape[2] == add.config.max_frames


def test_prepend_mode_reads_the_frame_tokens_outputs_not_the_action_tokens():
    """With a prepended action token the head reads the transformer's outputs 1..N of each
    frame (the frame's tokens), not 0..N-1: the action token's own output is the one dropped."""
    model = tiny_dynamics("prepend")
    tokens_BTN = random_tokens((B, T, N))
    frame_actions_BT = frame_actions(random_actions((B, T - 1)), A)
    params = random_params(model, tokens_BTN, frame_actions_BT)
    logits, state = jax.jit(functools.partial(model.apply, capture_intermediates=True))(
        {"params": params}, tokens_BTN, frame_actions_BT
    )
    (stack_out_BTPD,) = state["intermediates"]["transformer"]["__call__"]
    assert stack_out_BTPD.shape[2] == N + 1
    kernel_DV, bias_V = np.asarray(params["head"]["kernel"]), np.asarray(params["head"]["bias"])

    def head_on(x_BTND):
        return np.asarray(x_BTND, np.float32) @ kernel_DV + bias_V

    np.testing.assert_allclose(logits, head_on(stack_out_BTPD[:, :, 1:]), rtol=1e-4, atol=1e-4)
    assert np.abs(logits - head_on(stack_out_BTPD[:, :, :-1])).max() > 1e-2


@pytest.mark.parametrize(
    ("tokens_shape", "actions_shape", "message"),
    [
        ((B, T, N + 1), (B, T), "dynamics expects tokens"),
        ((B, T, N - 1), (B, T), "dynamics expects tokens"),
        ((B, T * N), (B, T), "dynamics expects tokens"),
        ((B, T, N), (B, T - 1), "one action per frame"),
        ((B, T, N), (B + 1, T), "one action per frame"),
    ],
    ids=["too_many_tokens", "too_few_tokens", "flat_tokens", "transition_actions", "batch"],
)
def test_wrong_input_shapes_raise(tokens_shape, actions_shape, message):
    """Shapes that do not match the model are refused, not broadcast: T-1 transition actions in
    place of T per-frame inputs would otherwise be a silent misalignment."""
    model = tiny_dynamics("add")
    params = jax.eval_shape(model.init, jax.random.key(0), *_inputs())
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(model.apply, params, *_inputs(tokens_shape, actions_shape))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"action_mode": "concat"}, "action_mode 'concat'"),
        ({"min_mask_rate": 0.9, "max_mask_rate": 0.5}, "mask rates"),
        ({"min_mask_rate": -0.1}, "mask rates"),
        ({"max_mask_rate": 1.5}, "mask rates"),
    ],
)
def test_bad_config_raises(overrides, message):
    """An unknown action mode or an impossible mask-rate range is a config error at once."""
    with pytest.raises(ValueError, match=message):
        DynamicsConfig(**overrides)
