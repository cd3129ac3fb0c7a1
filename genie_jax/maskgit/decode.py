"""MaskGIT decoding of one frame (Chang et al. 2022), as a pure function.

At each of `steps` steps the model predicts every masked token; a token is sampled from
softmax(logits / logit_temperature) (argmax at temperature 0). Tokens are then ranked by
confidence, log p(sampled) + choice_temperature * (1 - r) * Gumbel noise (r = (s+1)/steps,
so the noise anneals away), and the lowest-confidence ones are masked again, as many as the
cosine schedule says. Known tokens have confidence +inf: they are never re-masked or changed.

Genie's "temperature" is ambiguous (GENIE_FACTS): MaskGIT anneals the choice temperature,
Jafar divides the logits. Both are exposed.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from genie_jax.maskgit.schedule import masked_after_step


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    steps: int = 25  # Genie: 25 MaskGIT steps per frame
    logit_temperature: float = 1.0  # divides the logits; 0 takes the argmax
    choice_temperature: float = 1.0  # scales the annealed Gumbel noise on the confidences

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"sampling steps must be >= 1, got {self.steps}")
        if self.logit_temperature < 0 or self.choice_temperature < 0:
            raise ValueError("sampling temperatures must be >= 0")


def _draw(rng: jax.Array, sample: Callable, shape: tuple[int, ...]) -> jax.Array:
    """`sample(key, shape)` with one key for the batch, or row by row with keys [B] (shape[0]
    is B), so that each row's draw does not depend on which other rows share the batch."""
    if rng.ndim == 0:
        return sample(rng, shape)
    return jax.vmap(lambda key: sample(key, shape[1:]))(rng)


def _step_keys(rng: jax.Array, step_index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The (sampling, choice) keys of one decoding step, for one key or keys [B] alike."""

    def split(key):
        return jax.random.split(jax.random.fold_in(key, step_index))

    if rng.ndim == 0:
        sample_key, choice_key = split(rng)
        return sample_key, choice_key
    keys_B2 = jax.vmap(split)(rng)
    return keys_B2[:, 0], keys_B2[:, 1]


def _sample_by_inverse_cdf(rng: jax.Array, logits_BNV: jax.Array) -> jax.Array:
    """One categorical draw per token from a single uniform each.

    `jax.random.categorical` draws V Gumbel variates per token (65k per 64-token frame at
    V=1024): on a CPU that cost as much as a one-frame model pass and hid the KV cache's gain.
    """
    cdf_BNV = jnp.cumsum(jax.nn.softmax(logits_BNV, axis=-1), axis=-1)
    u_BN1 = _draw(rng, jax.random.uniform, logits_BNV.shape[:-1] + (1,))
    index_BN = jnp.sum(cdf_BNV < u_BN1 * cdf_BNV[..., -1:], axis=-1)
    return jnp.minimum(index_BN, logits_BNV.shape[-1] - 1)


LogitsFn = Callable[[jax.Array], jax.Array]  # tokens [B, N] -> logits [B, N, V]


def decode_frame(
    logits_fn: LogitsFn,
    tokens_BN: jax.Array,
    rng: jax.Array,
    *,
    mask_id: int,
    sampling: SamplingConfig,
    return_history: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Fills every `mask_id` entry of tokens [B, N]; returns the frame (and per-step states).

    `rng`: one key for the batch, or keys [B], one per row: a row's tokens then depend only on
    its own key and logits (a batch that grows or shrinks leaves the other rows' draws alone)
    with threefry keys, jax's default; "rbg" keys draw other bits under `vmap`.
    History [steps, B, N]: the tokens after each step (masked ones hold `mask_id`).
    """
    batch, num_tokens = tokens_BN.shape
    if not jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key) or rng.shape not in ((), (batch,)):
        raise ValueError(
            f"decode_frame takes one typed key (jax.random.key) or {batch} of them (one a "
            f"row), got {rng.dtype} {rng.shape}"
        )
    remaining_S = jnp.asarray(masked_after_step(num_tokens, sampling.steps))

    def step(tokens_BN, step_index):
        sample_rng, choice_rng = _step_keys(rng, step_index)
        logits_BNV = logits_fn(tokens_BN).astype(jnp.float32)
        if sampling.logit_temperature > 0:
            logits_BNV = logits_BNV / sampling.logit_temperature
            sampled_BN = _sample_by_inverse_cdf(sample_rng, logits_BNV)
        else:
            sampled_BN = jnp.argmax(logits_BNV, axis=-1)
        log_probs_BNV = jax.nn.log_softmax(logits_BNV)
        log_p_BN = jnp.take_along_axis(log_probs_BNV, sampled_BN[..., None], axis=-1)[..., 0]

        masked_BN = tokens_BN == mask_id
        candidate_BN = jnp.where(masked_BN, sampled_BN, tokens_BN)
        progress = (step_index + 1) / sampling.steps
        noise_BN = _draw(choice_rng, jax.random.gumbel, (batch, num_tokens))
        confidence_BN = log_p_BN + sampling.choice_temperature * (1.0 - progress) * noise_BN
        confidence_BN = jnp.where(masked_BN, confidence_BN, jnp.inf)

        # Re-mask the least confident, never more than were masked minus one (progress).
        num_masked_B = jnp.sum(masked_BN, axis=-1)
        keep_masked_B = jnp.clip(jnp.minimum(remaining_S[step_index], num_masked_B - 1), 0, None)
        rank_BN = jnp.argsort(jnp.argsort(confidence_BN, axis=-1), axis=-1)
        remask_BN = rank_BN < keep_masked_B[:, None]
        new_tokens_BN = jnp.where(remask_BN, mask_id, candidate_BN).astype(tokens_BN.dtype)
        return new_tokens_BN, new_tokens_BN

    tokens_BN, history_SBN = jax.lax.scan(step, tokens_BN, jnp.arange(sampling.steps))
    if return_history:
        return tokens_BN, history_SBN
    return tokens_BN
