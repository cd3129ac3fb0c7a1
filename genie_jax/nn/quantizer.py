"""Vector quantizer (VQ-VAE, van den Oord et al. 2017) as used by Genie's tokenizer and LAM.

Straight-through estimator, codebook + commitment losses, usage and perplexity metrics, and
dead-code reset. Codes and inputs are l2-normalized by default (ViT-VQGAN's factorized codes:
Genie's 32-d latents follow that recipe), which keeps many codes in use.

Dead-code reset: every code carries a `steps_unused` counter in the `vq_stats` collection; the
train step calls `reset_dead_codes` after the update, moving codes unused for `threshold`
steps (the LAM-collapse remedy listed in GENIE_FACTS). Where they go: onto the inputs of the
last training batch that the codebook fits worst (`worst_inputs`, also in `vq_stats`), so a
revived code wins at least the input it was placed on. Moving them onto a live code plus noise
(the fallback when no inputs were recorded) left a tiny LAM collapsed on one code: the revived
copies sat next to the one winner and never won.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util


def _l2_normalize(x: jax.Array) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


def nearest_codes(z_ME: jax.Array, codes_VE: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The nearest code of each input: (indices [M], squared distances [M]), no gradient.

    Same result as `argmin` over the [M, V] distances (the first of equal minima), found in two
    plain reductions: a min, then the smallest index that reaches it. XLA's CPU argmin is a
    variadic (value, index) reduction that took as long again as the distances themselves.
    """
    z_ME = jax.lax.stop_gradient(z_ME)
    codes_VE = jax.lax.stop_gradient(codes_VE)
    distance_MV = (
        jnp.sum(z_ME**2, axis=-1, keepdims=True)
        - 2.0 * jnp.einsum("me,ve->mv", z_ME, codes_VE)
        + jnp.sum(codes_VE**2, axis=-1)[None, :]
    )
    distance_M1 = jnp.min(distance_MV, axis=-1, keepdims=True)
    code_MV = jax.lax.broadcasted_iota(jnp.int32, distance_MV.shape, 1)
    codebook_size = distance_MV.shape[1]
    indices_M = jnp.min(jnp.where(distance_MV == distance_M1, code_MV, codebook_size), axis=-1)
    # A NaN row matches no code: keep its index in range (the step is caught as non-finite).
    return jnp.minimum(indices_M, codebook_size - 1), distance_M1[:, 0]


class VectorQuantizer(nn.Module):
    """Quantizes [..., E] vectors to the nearest of V codes."""

    codebook_size: int  # V
    code_dim: int  # E
    commitment_weight: float = 0.25  # beta in the VQ-VAE loss
    normalize: bool = True  # l2-normalize inputs and codes (cosine-similarity lookup)
    param_dtype: Any = jnp.float32

    def setup(self):
        init = nn.initializers.normal(stddev=1.0)
        self.codebook_VE = self.param(
            "codebook",
            nn.with_logical_partitioning(init, ("codebook", "code")),
            (self.codebook_size, self.code_dim),
            self.param_dtype,
        )
        # Inference may apply the model with params only: the counters then do not exist.
        self.has_stats = self.is_initializing() or self.has_variable("vq_stats", "steps_unused")
        if self.has_stats:
            self.steps_unused_V = self.variable(
                "vq_stats", "steps_unused", jnp.zeros, (self.codebook_size,), jnp.int32
            )
        # The batch inputs the codebook fits worst, worst first: where dead codes go.
        self.has_worst = self.is_initializing() or self.has_variable("vq_stats", "worst_inputs")
        if self.has_worst:
            self.worst_inputs_VE = self.variable(
                "vq_stats",
                "worst_inputs",
                jnp.zeros,
                (self.codebook_size, self.code_dim),
                jnp.float32,
            )

    def codes(self) -> jax.Array:
        """The effective codebook [V, E] (normalized if `normalize`)."""
        codebook_VE = jnp.asarray(self.codebook_VE, jnp.float32)
        return _l2_normalize(codebook_VE) if self.normalize else codebook_VE

    def lookup(self, indices: jax.Array) -> jax.Array:
        """Integer indices [...] -> code vectors [..., E]."""
        return jnp.take(self.codes(), indices, axis=0)

    def __call__(self, z_XE: jax.Array, *, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
        """z [..., E] -> (straight-through quantized z [..., E] in fp32, aux).

        aux: `indices` [...], `loss` (codebook + beta * commitment), `codebook_loss`,
        `commitment_loss`, `perplexity`, `usage` (fraction of codes used in this batch),
        `counts` [V].
        """
        if z_XE.shape[-1] != self.code_dim:
            raise ValueError(f"quantizer expects {self.code_dim}-d inputs, got {z_XE.shape}")
        lead_shape = z_XE.shape[:-1]
        z_ME = z_XE.reshape(-1, self.code_dim).astype(jnp.float32)
        if self.normalize:
            z_ME = _l2_normalize(z_ME)
        codes_VE = self.codes()
        indices_M, distance_M = nearest_codes(z_ME, codes_VE)
        q_ME = jnp.take(codes_VE, indices_M, axis=0)

        codebook_loss = jnp.mean((jax.lax.stop_gradient(z_ME) - q_ME) ** 2)
        commitment_loss = jnp.mean((z_ME - jax.lax.stop_gradient(q_ME)) ** 2)
        # Straight-through: the forward value is exactly the code (z - z == 0; z + (q - z) can
        # be off by an ulp), the gradient w.r.t. z is the identity, none reaches the codebook.
        q_st_ME = jax.lax.stop_gradient(q_ME) + (z_ME - jax.lax.stop_gradient(z_ME))

        # A scatter-add, not a sum over an [M, V] one-hot (10 ms a tokenizer step on CPU).
        counts_V = jnp.bincount(indices_M, length=self.codebook_size)
        probs_V = counts_V / jnp.maximum(jnp.sum(counts_V), 1)
        entropy = -jnp.sum(jnp.where(probs_V > 0, probs_V * jnp.log(probs_V), 0.0))
        if train and self.has_stats and not self.is_initializing():
            self.steps_unused_V.value = jnp.where(counts_V > 0, 0, self.steps_unused_V.value + 1)
        if train and self.has_worst and not self.is_initializing():
            self.worst_inputs_VE.value = self._worst_fit(z_ME, distance_M)

        aux = {
            "indices": indices_M.reshape(lead_shape),
            "loss": codebook_loss + self.commitment_weight * commitment_loss,
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
            "perplexity": jnp.exp(entropy),
            "usage": jnp.mean(counts_V > 0),
            "counts": counts_V,
        }
        return q_st_ME.reshape(*lead_shape, self.code_dim), aux

    def _worst_fit(self, z_ME: jax.Array, distance_M: jax.Array) -> jax.Array:
        """The V inputs farthest from their code (cycled when the batch holds fewer than V)."""
        k = min(self.codebook_size, z_ME.shape[0])
        _, worst_K = jax.lax.top_k(jax.lax.stop_gradient(distance_M), k)
        order_V = worst_K[jnp.arange(self.codebook_size) % k]
        return jax.lax.stop_gradient(z_ME[order_V])


def _reset_codebook(
    codebook_VE: jax.Array,
    steps_unused_V: jax.Array,
    rng: jax.Array,
    threshold: int,
    noise_scale: float,
    worst_inputs_VE: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    dead_V = steps_unused_V >= threshold
    source_rng, noise_rng = jax.random.split(rng)
    if worst_inputs_VE is not None:
        # Data-dependent: the i-th dead code moves onto the i-th worst-fit input of the last
        # batch (plus noise, so two copies of one input do not tie).
        rank_V = jnp.cumsum(dead_V) - 1
        scale = noise_scale * jnp.std(worst_inputs_VE)
        noise_VE = scale * jax.random.normal(noise_rng, codebook_VE.shape, codebook_VE.dtype)
        revived_VE = worst_inputs_VE[jnp.clip(rank_V, 0, None)].astype(codebook_VE.dtype)
        new_codebook_VE = jnp.where(dead_V[:, None], revived_VE + noise_VE, codebook_VE)
        return new_codebook_VE, jnp.where(dead_V, 0, steps_unused_V), jnp.sum(dead_V)
    live_logits_V = jnp.where(dead_V, -jnp.inf, 0.0)
    # If every code is dead (only possible with threshold 0), fall back to all codes.
    live_logits_V = jnp.where(jnp.all(dead_V), 0.0, live_logits_V)
    source_V = jax.random.categorical(source_rng, live_logits_V, shape=steps_unused_V.shape)
    scale = noise_scale * jnp.std(codebook_VE)
    noise_VE = scale * jax.random.normal(noise_rng, codebook_VE.shape, codebook_VE.dtype)
    revived_VE = codebook_VE[source_V] + noise_VE
    new_codebook_VE = jnp.where(dead_V[:, None], revived_VE, codebook_VE)
    new_steps_unused_V = jnp.where(dead_V, 0, steps_unused_V)
    return new_codebook_VE, new_steps_unused_V, jnp.sum(dead_V)


def reset_dead_codes(
    params: dict,
    vq_stats: dict,
    rng: jax.Array,
    *,
    threshold: int,
    noise_scale: float = 0.1,
) -> tuple[dict, dict, jax.Array]:
    """Revives dead codes in every quantizer of a model.

    Finds each `.../codebook` parameter with a matching `.../steps_unused` counter in
    `vq_stats`; codes unused for >= `threshold` steps move onto the recorded worst-fit inputs
    (`.../worst_inputs`) or, without them, onto a random live code, plus Gaussian noise
    (`noise_scale` times the std of the source), and their counters restart.

    Returns (params, vq_stats, number of codes reset).
    """
    flat_params = traverse_util.flatten_dict(params)
    flat_stats = traverse_util.flatten_dict(vq_stats)
    num_reset = jnp.zeros((), jnp.int32)
    for path, steps_unused_V in flat_stats.items():
        if path[-1] != "steps_unused":
            continue
        codebook_path = path[:-1] + ("codebook",)
        if codebook_path not in flat_params:
            raise KeyError(f"vq_stats entry {'/'.join(path)} has no codebook parameter")
        rng, code_rng = jax.random.split(rng)
        codebook_VE, flat_stats[path], count = _reset_codebook(
            flat_params[codebook_path],
            steps_unused_V,
            code_rng,
            threshold,
            noise_scale,
            flat_stats.get(path[:-1] + ("worst_inputs",)),
        )
        flat_params[codebook_path] = codebook_VE
        num_reset = num_reset + count
    return (
        traverse_util.unflatten_dict(flat_params),
        traverse_util.unflatten_dict(flat_stats),
        num_reset,
    )
