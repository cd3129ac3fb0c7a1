"""Actions for unlabelled clips from the WAM's own inverse-dynamics query (pseudo-labels).

The route from action-free video to the policy that VPT takes with a separate inverse-dynamics
model, here inside the one WAM: the action head, shown every frame with every action slot
hidden, names the action between each pair of frames; where it is confident, that action is a
policy target for the clip whose real actions are hidden. The labelled fraction trains the
action head; the unlabelled video then trains the policy head too. Nothing here has a gradient.
"""

import jax
import jax.numpy as jnp

from wam_jax.system import NO_LABEL


def inverse_query_masks(actions_BT: jax.Array, num_tokens: int) -> tuple[jax.Array, jax.Array]:
    """(video hidden [B, T, N], slots hidden [B, T]) of the inverse-dynamics query: every frame
    shown, every slot but the first hidden."""
    frames = actions_BT.shape[1]
    slots_hidden_BT = jnp.broadcast_to(jnp.arange(frames) >= 1, actions_BT.shape)
    return jnp.zeros(actions_BT.shape + (num_tokens,), bool), slots_hidden_BT


def pseudo_actions(
    slot_logits_BTR: jax.Array,
    actions_BT: jax.Array,
    length_B: jax.Array,
    *,
    threshold: float,
) -> jax.Array:
    """a_t [B, T] from the inverse query's action logits (row t + 1 names a_t): the head's
    choice where a_t is unknown, o_{t+1} is inside the episode and the head's probability is at
    least `threshold`; NO_LABEL elsewhere (a known a_t stays the real one's business)."""
    probs_BTR = jax.nn.softmax(slot_logits_BTR[:, 1:], axis=-1)
    pad_B1R = jnp.zeros_like(probs_BTR[:, :1])
    probs_BTR = jnp.concatenate([probs_BTR, pad_B1R], axis=1)  # row t: a_t
    frames = actions_BT.shape[1]
    has_next_BT = jnp.arange(frames)[None, :] < length_B[:, None] - 1
    keep_BT = (actions_BT < 0) & has_next_BT & (jnp.max(probs_BTR, axis=-1) >= threshold)
    guess_BT = jnp.argmax(probs_BTR, axis=-1).astype(actions_BT.dtype)
    return jax.lax.stop_gradient(jnp.where(keep_BT, guess_BT, NO_LABEL))
