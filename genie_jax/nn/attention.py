"""Multi-head self-attention through `jax.nn.dot_product_attention`.

Which kernel runs (`attention_kernel`): on a GPU, attention over long sequences in bf16/fp16
goes to cuDNN's fused flash attention (`implementation="cudnn"`); everything else (CPU, TPU,
fp32, and short sequences such as temporal attention over 16 frames, whose scores are tiny)
uses XLA's own lowering. `jax.nn.dot_product_attention` picks XLA when asked for no
implementation, so the choice is made here. `attention_kernels("xla")` forces one for a
comparison (`genie bench train --attention xla`).

On CPU, XLA writes the whole [S, K, L, L] score tensor to memory for each step of the softmax
and of its backward pass; at 256 tokens a frame that is 32 MiB a layer for 32 frames, read and
written about a dozen times. `attend` then runs the sequences a few at a time under `lax.map`
(scores that fit in cache) and recomputes each chunk's scores in the backward pass instead of
keeping them, the way flash attention does on accelerators. Same operations per sequence;
only the order of the loop differs.
"""

import contextlib
import contextvars
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.nn.rotary import apply_rotary

CPU_CHUNK_SCORE_BYTES = 4 << 20  # fp32 scores a chunk; best of 1-16 MiB on 2 cores (NOTES.md)
# `auto` sends a sequence to cuDNN when its length is a multiple of this: shorter ones have
# scores small enough that a fused kernel saves next to nothing, and JAX's cuDNN training path
# refused a length of 257 on an H200 (the dynamics model's 256 tokens + a prepended action).
CUDNN_LENGTH_MULTIPLE = 64
ATTENTION_KERNELS = ("auto", "xla", "cudnn")


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
        rotary_LF: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Attention over L; with `kv_cache`, the L inputs are positions cache_index.. of a longer
        sequence whose earlier keys and values sit in the cache.

        kv_cache: (k_SCKH, v_SCKH) buffers of capacity C. The new keys and values are written at
        `cache_index` and every query attends causally to positions < cache_index + its own
        offset + 1. Returns (out_SLD, updated cache) in that case, out_SLD otherwise.

        rotary_LF: per-position angles (`grid_rotary_angles`; or [L, K, F] per head,
        `heads_with_rotary`) that rotate queries and keys after the qk-norm, so that scores
        depend on relative positions (no KV cache).
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
        if rotary_LF is not None:
            if kv_cache is not None:
                raise ValueError("rotary positions are for attention without a KV cache")
            q_SLKH = apply_rotary(q_SLKH, rotary_LF)
            k_SLKH = apply_rotary(k_SLKH, rotary_LF)
        if kv_cache is None:
            out_SLKH = attend(q_SLKH, k_SLKH, v_SLKH, causal=causal)
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


_CHUNK_ON_CPU = contextvars.ContextVar("chunk_attention_on_cpu", default=True)
_KERNEL = contextvars.ContextVar("attention_kernel", default="auto")


@contextlib.contextmanager
def attention_kernels(kernel: str):
    """Traces attention with `kernel` ("auto", "xla" or "cudnn") instead of the automatic
    choice. Like `accelerator_attention`, it acts when a function is traced."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}; choose from {ATTENTION_KERNELS}")
    token = _KERNEL.set(kernel)
    try:
        yield
    finally:
        _KERNEL.reset(token)


def attention_kernel(shape_SLKH: tuple[int, ...], dtype) -> str:
    """The `implementation` for `jax.nn.dot_product_attention`: "cudnn" on a GPU for bf16/fp16
    sequences whose length is a non-zero multiple of CUDNN_LENGTH_MULTIPLE, with a head size
    cuDNN takes (a multiple of 8, at most 128), else "xla"; or what `attention_kernels`
    forces."""
    forced = _KERNEL.get()
    if forced != "auto":
        return forced
    _, length, _, head_dim = shape_SLKH
    fused = (
        jax.default_backend() == "gpu"
        and jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
        and length > 0
        and length % CUDNN_LENGTH_MULTIPLE == 0
        and head_dim % 8 == 0
        and head_dim <= 128
    )
    return "cudnn" if fused else "xla"


@contextlib.contextmanager
def accelerator_attention():
    """Traces the accelerator's attention (no chunks) on CPU too: `genie plan --xla` compiles
    on CPU to check a plan made for accelerators. It acts when a function is traced, so a
    jitted function traced before keeps its form."""
    token = _CHUNK_ON_CPU.set(False)
    try:
        yield
    finally:
        _CHUNK_ON_CPU.reset(token)


def batch_shards() -> int:
    """How many devices the traced batch is split over: the product of the mesh axes that the
    logical rules in scope map the activations' batch axis to (1 outside a mesh)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return 1
    (axes,) = nn.logical_to_mesh_axes(("act_batch",))
    axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
    return math.prod(dict(mesh.shape).get(axis, 1) for axis in axes)


def cpu_chunks(shape_SLKH: tuple[int, ...]) -> int:
    """How many chunks `attend` splits the S sequences into: 1 (no split) off CPU or when the
    scores of each device's share fit in CPU_CHUNK_SCORE_BYTES, else the smallest divisor of
    S that brings each device's part of a chunk under it (or S, one sequence at a time).
    A device's share is S / `batch_shards()` sequences (`--cpu-devices`)."""
    if jax.default_backend() != "cpu" or not _CHUNK_ON_CPU.get():
        return 1
    sequences, length, heads, _ = shape_SLKH
    budget = CPU_CHUNK_SCORE_BYTES * batch_shards()
    per_chunk = max(1, budget // (heads * length * length * 4))
    if per_chunk >= sequences:
        return 1
    wanted = math.ceil(sequences / per_chunk)
    return next(n for n in range(wanted, sequences + 1) if sequences % n == 0)


def attend(
    q_SLKH: jax.Array,
    k_SLKH: jax.Array,
    v_SLKH: jax.Array,
    *,
    causal: bool,
    chunks: int | None = None,
) -> jax.Array:
    """`jax.nn.dot_product_attention` over S independent sequences, in `chunks` rematerialized
    chunks of S (default `cpu_chunks`; see the module docstring).

    Chunk i holds sequences i, i + chunks, i + 2 * chunks, ...: where S is sharded (batch over
    devices), each device keeps working on its own sequences and nothing moves between them.
    """
    chunks = cpu_chunks(q_SLKH.shape) if chunks is None else chunks
    if chunks == 1:
        kernel = attention_kernel(q_SLKH.shape, q_SLKH.dtype)
        return jax.nn.dot_product_attention(
            q_SLKH, k_SLKH, v_SLKH, is_causal=causal, implementation=kernel
        )
    sequences = q_SLKH.shape[0]
    if sequences % chunks:
        raise ValueError(f"{sequences} sequences do not split into {chunks} chunks")

    def split(x_SLKH):  # [S, ...] -> [chunks, S / chunks, ...], chunk i = every chunks-th
        return jnp.swapaxes(x_SLKH.reshape(sequences // chunks, chunks, *x_SLKH.shape[1:]), 0, 1)

    @jax.checkpoint
    def one_chunk(qkv):
        return jax.nn.dot_product_attention(*qkv, is_causal=causal)

    out_NCLKH = jax.lax.map(one_chunk, (split(q_SLKH), split(k_SLKH), split(v_SLKH)))
    return jnp.swapaxes(out_NCLKH, 0, 1).reshape(q_SLKH.shape)


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
