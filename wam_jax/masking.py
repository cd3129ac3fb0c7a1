"""Training masks of the WAM: which video tokens and action slots are hidden (and predicted).

One mode per sample, drawn with `mode_probs` (see `WAMConfig`):

  maskgit  a cut c ~ U{1 .. length-1}: video tokens of frames c.. hidden with probability
           r ~ U[min_rate, max_rate] (per sample, as in Genie), frames before c given whole
           (as at inference, so their policy head trains too); action slots 1.. hidden with
           probability u ~ U[0, 1];
  policy   the same cut: every token and slot of frames c.. hidden, frames before c given
           whole: the closed-loop query (past -> next action and frame);
  inverse  every action slot 1.. hidden, no video token: two frames -> the action between.

Frame 0 and slot 0 are never hidden. Positions past a sample's `length` may be hidden; the
losses ignore them.
"""

import jax
import jax.numpy as jnp

from wam_jax.config import MASK_MODES

MODE_IDS = {name: i for i, name in enumerate(MASK_MODES)}


def sample_wam_masks(
    rng: jax.Array,
    length_B: jax.Array,
    *,
    num_frames: int,
    num_tokens: int,
    mode_probs: tuple[float, float, float],
    min_mask_rate: float,
    max_mask_rate: float,
) -> dict[str, jax.Array]:
    """`video` bool [B, T, N] and `slots` bool [B, T] (True = hidden), and `mode` int [B]."""
    batch = length_B.shape[0]
    mode_rng, rate_rng, action_rate_rng, video_rng, slot_rng, cut_rng = jax.random.split(rng, 6)
    mode_B = jax.random.choice(
        mode_rng, len(MASK_MODES), (batch,), p=jnp.asarray(mode_probs, jnp.float32)
    )
    t_T = jnp.arange(num_frames)
    after_first_BT = jnp.broadcast_to(t_T >= 1, (batch, num_frames))

    # The cut: uniform over 1..length-1 (1 when the sample has a single frame).
    last_B = jnp.maximum(length_B - 1, 1)
    cut_B = 1 + jnp.floor(jax.random.uniform(cut_rng, (batch,)) * last_B).astype(jnp.int32)
    future_BT = t_T[None, :] >= cut_B[:, None]

    rate_B = jax.random.uniform(rate_rng, (batch,), minval=min_mask_rate, maxval=max_mask_rate)
    random_video_BTN = (
        jax.random.uniform(video_rng, (batch, num_frames, num_tokens)) < rate_B[:, None, None]
    ) & future_BT[:, :, None]
    action_rate_B = jax.random.uniform(action_rate_rng, (batch,))
    random_slots_BT = (
        jax.random.uniform(slot_rng, (batch, num_frames)) < action_rate_B[:, None]
    ) & after_first_BT

    is_ = {name: (mode_B == i)[:, None] for name, i in MODE_IDS.items()}
    video_BTN = jnp.where(
        is_["maskgit"][:, :, None],
        random_video_BTN,
        jnp.where(is_["policy"][:, :, None], future_BT[:, :, None], False),
    )
    video_BTN = jnp.broadcast_to(video_BTN, (batch, num_frames, num_tokens))
    slots_BT = jnp.where(
        is_["maskgit"], random_slots_BT, jnp.where(is_["policy"], future_BT, after_first_BT)
    )
    return {"video": video_BTN, "slots": slots_BT, "mode": mode_B}
