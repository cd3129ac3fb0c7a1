"""Mission contrast: windows trained under another window's mission, so that the policy's
pickup depends on what the mission names.

Closed-loop PickupLoc policies lose most of their failed episodes by picking up an object
the mission does not name, some training seeds in three of four episodes (RESULTS.md, "Why
seed 2 fails"): facing an object is, in the demonstrations, almost always facing the named
one, so "pick up what you face" fits them nearly as well as reading the mission. A contrast
window shows the same frames with the instruction of another window of the batch that names
a different object (another type, or another colour where both give one). Under it:

  policy   the window's actions were chosen for its own mission, so they teach nothing
           (the policy, latent policy and pseudo-label terms leave the window out), but
           wherever the agent faced the object its own mission names, PICKUP is wrong: an
           unlikelihood term, -log(1 - p(PICKUP)), at those frames (weight
           `config.wam.mission_contrast_weight`);
  ahead    the named object ahead becomes an unnamed one, and an unnamed object ahead may be
           the new mission's: that class is left out;
  target   the named cells belong to the old mission: left out.
The video and inverse-dynamics terms do not depend on the mission and keep the window.
Labels come from the simulator's "cell ahead" (data 1.6.0), which every window carries, with
or without its actions: the joint WAM gets the term on every window it reads, the BC baseline
on the labelled windows it reads.
"""

import jax
import jax.numpy as jnp

from wam_jax.data.babyai_env import AHEAD_NAMED, AHEAD_OBJECT, PICKUP
from wam_jax.system import NO_LABEL


def _has_any(words_BL: jax.Array, ids_K: jax.Array) -> jax.Array:
    """Bool [B, K]: window b's mission holds word ids_K[k]."""
    return jnp.any(words_BL[:, :, None] == ids_K[None, None, :], axis=1)


def names_another_object(
    words_BL: jax.Array,
    other_BL: jax.Array,
    color_ids: tuple[int, ...],
    type_ids: tuple[int, ...],
) -> jax.Array:
    """Bool [B]: the mission `other_BL[b]` cannot name the object `words_BL[b]` names, for its
    object type differs, or both give a colour and the colours differ. Missions without a
    type word never count (nothing is known of their object)."""
    types_K = jnp.asarray(type_ids, jnp.int32)
    colors_K = jnp.asarray(color_ids, jnp.int32)
    own_type_BK, other_type_BK = _has_any(words_BL, types_K), _has_any(other_BL, types_K)
    own_color_BK, other_color_BK = _has_any(words_BL, colors_K), _has_any(other_BL, colors_K)
    both_typed_B = jnp.any(own_type_BK, axis=1) & jnp.any(other_type_BK, axis=1)
    type_differs_B = jnp.any(own_type_BK != other_type_BK, axis=1)
    both_colored_B = jnp.any(own_color_BK, axis=1) & jnp.any(other_color_BK, axis=1)
    color_differs_B = jnp.any(own_color_BK != other_color_BK, axis=1)
    return both_typed_B & (type_differs_B | (both_colored_B & color_differs_B))


def contrast_windows(
    rng: jax.Array,
    words_BL: jax.Array,
    share: float,
    color_ids: tuple[int, ...],
    type_ids: tuple[int, ...],
) -> tuple[jax.Array, jax.Array]:
    """(words the model reads [B, L], swapped [B]): about `share` of the windows read the
    mission of the window before them in the batch, where that one names another object."""
    other_BL = jnp.roll(words_BL, 1, axis=0)
    drawn_B = jax.random.bernoulli(rng, share, (words_BL.shape[0],))
    swapped_B = drawn_B & names_another_object(words_BL, other_BL, color_ids, type_ids)
    return jnp.where(swapped_B[:, None], other_BL, words_BL), swapped_B


def ahead_under_contrast(ahead_BT: jax.Array, swapped_B: jax.Array) -> jax.Array:
    """The cell-ahead labels a swapped window's new mission implies: named -> object, object
    -> unknown (NO_LABEL); other windows unchanged."""
    swapped = jnp.where(
        ahead_BT == AHEAD_NAMED,
        AHEAD_OBJECT,
        jnp.where(ahead_BT == AHEAD_OBJECT, NO_LABEL, ahead_BT),
    )
    return jnp.where(swapped_B[:, None], swapped, ahead_BT)


def pickup_unlikelihood(next_actions_BTR: jax.Array, weight_BT: jax.Array) -> dict:
    """Mean of -log(1 - p(PICKUP)) over `weight_BT`, and p(PICKUP) there."""
    log_p_BTR = jax.nn.log_softmax(next_actions_BTR, axis=-1)
    # log(1 - p) as the log-sum of the other actions' probabilities: finite as p -> 1.
    others_BTR = jnp.where(jnp.arange(log_p_BTR.shape[-1]) == PICKUP, -jnp.inf, log_p_BTR)
    loss_BT = -jax.nn.logsumexp(others_BTR, axis=-1)
    weight_BT = weight_BT.astype(jnp.float32)
    count = jnp.sum(weight_BT)
    safe = jnp.maximum(count, 1.0)
    return {
        "loss": jnp.sum(loss_BT * weight_BT) / safe,
        "pickup_prob": jnp.sum(jnp.exp(log_p_BTR[..., PICKUP]) * weight_BT) / safe,
        "count": count,
    }
