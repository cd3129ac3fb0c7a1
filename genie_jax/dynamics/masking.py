"""The MaskGIT training mask (Genie §2.1): one rate per sample, the first frame never masked."""

import jax


def sample_training_mask(
    rng: jax.Array,
    shape_BTN: tuple[int, int, int],
    *,
    min_rate: float = 0.5,
    max_rate: float = 1.0,
) -> jax.Array:
    """Boolean mask [B, T, N], True where the token is hidden from the model.

    Each sample b draws its own rate r_b ~ U[min_rate, max_rate] (one rate per batch is a
    pitfall listed in GENIE_FACTS); each token of frames 1..T-1 is then masked with
    probability r_b. Frame 0 is the context and is never masked.
    """
    batch, frames, tokens = shape_BTN
    rate_rng, token_rng = jax.random.split(rng)
    rate_B = jax.random.uniform(rate_rng, (batch,), minval=min_rate, maxval=max_rate)
    mask_BTN = jax.random.uniform(token_rng, shape_BTN) < rate_B[:, None, None]
    return mask_BTN.at[:, 0].set(False)
