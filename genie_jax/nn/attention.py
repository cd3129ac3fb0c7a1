"""Multi-head self-attention through `jax.nn.dot_product_attention`.

`jax.nn.dot_product_attention` lowers to cuDNN flash attention on GPUs (bf16/fp16) and to
plain XLA elsewhere, so the same module runs on a laptop CPU, a GPU and a TPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class Attention(nn.Module):
    """Self-attention over the second axis of x_SLD ([S, L, D]: S independent sequences).

    The ST block calls it with S = B*T, L = N for spatial attention and S = B*N, L = T (causal)
    for temporal attention.
    """

    num_heads: int  # K
    qk_norm: bool = False  # RMS-normalize queries and keys (Genie dynamics uses it)
    dtype: jnp.dtype = jnp.float32  # compute dtype
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x_SLD: jax.Array,
        *,
        causal: bool,
        kv_cache: tuple[jax.Array, jax.Array] | None = None,
        cache_index: int | jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Attention over L; with `kv_cache`, the L inputs are positions cache_index.. of a longer
        sequence whose earlier keys and values sit in the cache.

        kv_cache: (k_SCKH, v_SCKH) buffers of capacity C. The new keys and values are written at
        `cache_index` and every query attends causally to positions < cache_index + its own
        offset + 1. Returns (out_SLD, updated cache) in that case, out_SLD otherwise.
        """
        dim = x_SLD.shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"model width {dim} is not divisible by {self.num_heads} heads")
        head_dim = dim // self.num_heads
        # Explicit kernels + einsum rather than nn.DenseGeneral: DenseGeneral reshapes its boxed
        # multi-axis kernel, which breaks logical sharding constraints under a mesh.
        qkv_init = nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=0, out_axis=(1, 2, 3)
        )
        qkv_DCKH = self.param(
            "qkv",
            nn.with_logical_partitioning(qkv_init, ("embed", "qkv", "heads", "head_dim")),
            (dim, 3, self.num_heads, head_dim),
            self.param_dtype,
        )
        out_init = nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
        )
        out_KHD = self.param(
            "out",
            nn.with_logical_partitioning(out_init, ("heads", "head_dim", "embed")),
            (self.num_heads, head_dim, dim),
            self.param_dtype,
        )
        x_SLD = x_SLD.astype(self.dtype)
        qkv_SLCKH = jnp.einsum("sld,dckh->slckh", x_SLD, qkv_DCKH.astype(self.dtype))
        q_SLKH, k_SLKH, v_SLKH = (qkv_SLCKH[:, :, i] for i in range(3))
        if self.qk_norm:
            q_SLKH = self._rms_norm("q_norm", q_SLKH)
            k_SLKH = self._rms_norm("k_norm", k_SLKH)
        if kv_cache is None:
            out_SLKH = jax.nn.dot_product_attention(q_SLKH, k_SLKH, v_SLKH, is_causal=causal)
            return jnp.einsum("slkh,khd->sld", out_SLKH, out_KHD.astype(self.dtype))
        if not causal:
            raise ValueError("a KV cache only makes sense for causal attention")
        k_SCKH, v_SCKH = kv_cache
        out_SLKH = _attend_with_cache(q_SLKH, k_SLKH, v_SLKH, k_SCKH, v_SCKH, cache_index)
        out_SLD = jnp.einsum("slkh,khd->sld", out_SLKH, out_KHD.astype(self.dtype))
        # The updated cache; a caller that drops it (a MaskGIT step) pays nothing for it: the
        # attention above reads the old cache, so XLA removes the unused update.
        k_SCKH = jax.lax.dynamic_update_slice_in_dim(
            k_SCKH, k_SLKH.astype(k_SCKH.dtype), cache_index, axis=1
        )
        v_SCKH = jax.lax.dynamic_update_slice_in_dim(
            v_SCKH, v_SLKH.astype(v_SCKH.dtype), cache_index, axis=1
        )
        return out_SLD, (k_SCKH, v_SCKH)

    def _rms_norm(self, name: str, x_SLKH: jax.Array) -> jax.Array:
        # Normalize in fp32: bf16 sums of squares lose the small heads.
        normed = nn.RMSNorm(
            dtype=jnp.float32,
            param_dtype=self.param_dtype,
            scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("head_dim",)),
            name=name,
        )(x_SLKH.astype(jnp.float32))
        return normed.astype(self.dtype)


def _attend_with_cache(
    q_SLKH: jax.Array,
    k_SLKH: jax.Array,
    v_SLKH: jax.Array,
    k_SCKH: jax.Array,
    v_SCKH: jax.Array,
    cache_index: jax.Array,
) -> jax.Array:
    """Causal attention of L new positions (cache_index..) over the cached positions
    < cache_index and over themselves, with one softmax across both (fp32 scores)."""
    scale = q_SLKH.shape[-1] ** -0.5
    q_SLKH = q_SLKH.astype(jnp.float32) * scale
    scores_SKLC = jnp.einsum("slkh,sckh->sklc", q_SLKH, k_SCKH.astype(jnp.float32))
    scores_SKLM = jnp.einsum("slkh,smkh->sklm", q_SLKH, k_SLKH.astype(jnp.float32))
    length, capacity = q_SLKH.shape[1], k_SCKH.shape[1]
    past_C = jnp.arange(capacity) < cache_index
    causal_LM = jnp.arange(length)[None, :] <= jnp.arange(length)[:, None]
    neg = jnp.finfo(jnp.float32).min
    scores_SKLC = jnp.where(past_C, scores_SKLC, neg)
    scores_SKLM = jnp.where(causal_LM, scores_SKLM, neg)
    probs = jax.nn.softmax(jnp.concatenate([scores_SKLC, scores_SKLM], axis=-1), axis=-1)
    probs_SKLC, probs_SKLM = probs[..., :capacity], probs[..., capacity:]
    out_SLKH = jnp.einsum("sklc,sckh->slkh", probs_SKLC, v_SCKH.astype(jnp.float32))
    out_SLKH += jnp.einsum("sklm,smkh->slkh", probs_SKLM, v_SLKH.astype(jnp.float32))
    return out_SLKH.astype(v_SLKH.dtype)
