"""Action alignment: ã_t (the transition x_t -> x_{t+1}) conditions frame t+1 and later only.

Checked by intervention: change one transition action (or one frame's tokens) and compare the
logits frame by frame.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.dynamics import ACTION_MODES, frame_actions
from tests.dynamics.tiny import A, N, random_actions, random_params, random_tokens, tiny_dynamics

B, T = 2, 5
EXACT = 1e-6  # frames that must not change: equal up to float noise
CHANGED = 1e-3  # frames that must change: by far more than that


@functools.cache
def _logits_fn(action_mode: str):
    """Jitted (tokens [B, T, N], transition actions [B, T-1]) -> logits [B, T, N, V]."""
    model = tiny_dynamics(action_mode)
    params = random_params(model, jnp.zeros((B, T, N), jnp.int32), jnp.zeros((B, T), jnp.int32))

    @jax.jit
    def logits(tokens_BTN, actions_BA):
        return model.apply({"params": params}, tokens_BTN, frame_actions(actions_BA, A))

    return logits


def _per_frame_change_BTN(before_BTNV, after_BTNV) -> np.ndarray:
    return np.max(np.abs(np.asarray(before_BTNV) - np.asarray(after_BTNV)), axis=-1)


def test_frame_actions_prepends_the_no_action_id():
    """Frame 0 gets the no-action id A and frame t >= 1 gets ã_{t-1}: shifted by one, so that
    ã_t lands on frame t+1."""
    actions_BA = jnp.array([[0, 3, 5], [2, 2, 1]], jnp.int32)
    np.testing.assert_array_equal(frame_actions(actions_BA, A), [[A, 0, 3, 5], [A, 2, 2, 1]])


@pytest.mark.parametrize("action_mode", ACTION_MODES)
@pytest.mark.parametrize("t", range(T - 1))
def test_action_t_changes_frame_t_plus_1_and_nothing_before(action_mode, t):
    """Changing ã_t must leave the logits of frames 0..t untouched (they are predicted before
    the transition happens) and change every token of frame t+1. An off-by-one alignment (ã_t
    on frame t) or a leak through non-causal attention would fail one of the two."""
    logits = _logits_fn(action_mode)
    tokens_BTN, actions_BA = random_tokens((B, T, N)), random_actions((B, T - 1))
    changed_BA = actions_BA.copy()
    changed_BA[:, t] = (actions_BA[:, t] + 1) % A
    change_BTN = _per_frame_change_BTN(
        logits(tokens_BTN, actions_BA), logits(tokens_BTN, changed_BA)
    )
    assert change_BTN[:, : t + 1].max() <= EXACT, f"ã_{t} leaks into frames <= {t}"
    assert np.all(change_BTN[:, t + 1] > CHANGED), f"ã_{t} does not reach frame {t + 1}"
    # ...and, through causal temporal attention, the frames after it.
    assert np.all(change_BTN[:, t + 2 :].max(axis=-1) > CHANGED)


@pytest.mark.parametrize("action_mode", ACTION_MODES)
@pytest.mark.parametrize("k", range(1, T))
def test_tokens_of_frame_k_change_nothing_before_it(action_mode, k):
    """The model is causal in tokens: frame k's tokens cannot inform the prediction of an
    earlier frame (at sampling time they do not exist yet)."""
    logits = _logits_fn(action_mode)
    tokens_BTN, actions_BA = random_tokens((B, T, N)), random_actions((B, T - 1))
    changed_BTN = tokens_BTN.copy()
    changed_BTN[:, k] = random_tokens((B, N), seed=9)
    assert np.any(changed_BTN[:, k] != tokens_BTN[:, k])
    change_BTN = _per_frame_change_BTN(
        logits(tokens_BTN, actions_BA), logits(changed_BTN, actions_BA)
    )
    assert change_BTN[:, :k].max() <= EXACT, f"frame {k} leaks into earlier frames"
    assert np.all(change_BTN[:, k].max(axis=-1) > CHANGED)
