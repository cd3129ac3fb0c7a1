"""Spatiotemporal (ST) transformer (Genie §2, Fig. 4).

Each block: spatial attention over the N tokens of one frame, then causal temporal attention
over the T tokens at one patch position, then a single MLP (Genie drops the post-spatial MLP).
Pre-norm residual blocks; no positional encoding inside (it is added once at the input).

KV cache (frame-by-frame sampling): temporal attention is the only place where frames meet, so
caching each layer's temporal keys and values of the frames already generated lets a new frame
run through the stack on its own. `empty_kv_cache` makes the buffers; `STTransformer` called
with `kv_cache=` and `cache_index=` treats its T input frames as frames cache_index.. of the
sequence and returns the updated cache.
"""

import contextlib
import contextvars
from typing import Any

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.nn.attention import Attention

# Block-boundary activation axes; mapped to mesh axes in genie_jax/train/sharding.py.
ACTIVATION_AXES = ("act_batch", "act_time", "act_tokens", "act_embed")

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


_UNROLL = contextvars.ContextVar("unroll_scanned_layers", default=False)


@contextlib.contextmanager
def unrolled_layers():
    """Traces every layer stack as a Python loop of blocks, `scan_layers` or not. XLA counts a
    loop body once, so FLOP counts come from this form (`genie bench train`). It acts when a
    function is traced and changes the parameter tree (block_i instead of one stacked
    `blocks`): use it on abstract states only."""
    token = _UNROLL.set(True)
    try:
        yield
    finally:
        _UNROLL.reset(token)


def _layer_norm(name: str, param_dtype: Any) -> nn.LayerNorm:
    # fp32 statistics whatever the compute dtype.
    return nn.LayerNorm(
        dtype=jnp.float32,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
        name=name,
    )


class MLP(nn.Module):
    """D -> F -> D with GELU."""

    mlp_dim: int  # F
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x_BTND: jax.Array) -> jax.Array:
        dim = x_BTND.shape[-1]
        init = nn.initializers.lecun_normal()
        h_BTNF = nn.Dense(
            self.mlp_dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
            name="up",
        )(x_BTND)
        h_BTNF = nn.gelu(h_BTNF)
        return nn.Dense(
            dim,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
            name="down",
        )(h_BTNF)


KVCache = tuple[jax.Array, jax.Array]  # (k, v), each [layers, B*N, capacity, K, Dh]


def empty_kv_cache(
    *,
    num_layers: int,
    batch: int,
    num_tokens: int,
    capacity: int,
    dim: int,
    num_heads: int,
    dtype: Any = jnp.float32,
) -> KVCache:
    """Zeroed temporal-attention key/value buffers for `capacity` frames."""
    shape = (num_layers, batch * num_tokens, capacity, num_heads, dim // num_heads)
    return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


class STBlock(nn.Module):
    """One ST block on x_BTND.

    The `(carry, cache) -> (carry, cache)` signature lets nn.scan stack it; without a cache the
    second output is None.
    """

    num_heads: int  # K
    mlp_dim: int  # F
    qk_norm: bool = False
    causal_time: bool = True  # temporal attention sees only frames <= t
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x_BTND: jax.Array,
        kv_cache: tuple[jax.Array, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
        spatial_rotary_NF: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        batch, _frames, _tokens, _dim = x_BTND.shape

        def attention(name: str) -> Attention:
            return Attention(
                num_heads=self.num_heads,
                qk_norm=self.qk_norm,
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name=name,
            )

        h_BTND = _layer_norm("spatial_norm", self.param_dtype)(x_BTND).astype(self.dtype)
        h_SND = einops.rearrange(h_BTND, "b t n d -> (b t) n d")
        h_SND = attention("spatial_attention")(h_SND, causal=False, rotary_LF=spatial_rotary_NF)
        x_BTND = x_BTND + einops.rearrange(h_SND, "(b t) n d -> b t n d", b=batch)

        h_BTND = _layer_norm("temporal_norm", self.param_dtype)(x_BTND).astype(self.dtype)
        h_STD = einops.rearrange(h_BTND, "b t n d -> (b n) t d")
        if kv_cache is None:
            h_STD = attention("temporal_attention")(h_STD, causal=self.causal_time)
        else:
            h_STD, kv_cache = attention("temporal_attention")(
                h_STD, causal=self.causal_time, kv_cache=kv_cache, cache_index=cache_index
            )
        x_BTND = x_BTND + einops.rearrange(h_STD, "(b n) t d -> b t n d", b=batch)

        h_BTND = _layer_norm("mlp_norm", self.param_dtype)(x_BTND).astype(self.dtype)
        x_BTND = x_BTND + MLP(self.mlp_dim, self.dtype, self.param_dtype, name="mlp")(h_BTND)
        x_BTND = nn.with_logical_constraint(x_BTND, ACTIVATION_AXES)
        return x_BTND, kv_cache


class STTransformer(nn.Module):
    """A stack of ST blocks plus a final LayerNorm: [B, T, N, D] -> [B, T, N, D]."""

    num_layers: int
    num_heads: int
    mlp_dim: int
    qk_norm: bool = False
    causal_time: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    scan_layers: bool = False  # one compiled block under nn.scan: faster compiles for deep stacks
    remat_policy: str = "none"  # one of REMAT_POLICIES: what a block keeps for the backward pass

    @nn.compact
    def __call__(
        self,
        x_BTND: jax.Array,
        *,
        kv_cache: KVCache | None = None,
        cache_index: int | jax.Array | None = None,
        spatial_rotary_NF: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, KVCache]:
        """x_BTND -> x_BTND; with `kv_cache` (see `empty_kv_cache`) -> (x_BTND, new cache).

        spatial_rotary_NF: rotary angles per position of a frame (`grid_rotary_angles`; or
        [N, K, F] per head) for every block's spatial attention; None: no rotary positions.
        """
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(
                f"unknown remat_policy {self.remat_policy!r}; choose from {sorted(REMAT_POLICIES)}"
            )
        block_cls = STBlock
        if self.remat_policy != "none":
            block_cls = nn.remat(
                STBlock, policy=REMAT_POLICIES[self.remat_policy], prevent_cse=not self.scan_layers
            )
        block_kwargs = dict(
            num_heads=self.num_heads,
            mlp_dim=self.mlp_dim,
            qk_norm=self.qk_norm,
            causal_time=self.causal_time,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )
        if kv_cache is not None:
            if not self.causal_time:
                raise ValueError("a KV cache needs causal temporal attention")
            cache_index = jnp.asarray(cache_index, jnp.int32)
        x_BTND = nn.with_logical_constraint(x_BTND.astype(self.dtype), ACTIVATION_AXES)
        if self.scan_layers and not _UNROLL.get():
            stack = nn.scan(
                block_cls,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(0, nn.broadcast, nn.broadcast),
                length=self.num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(**block_kwargs, name="blocks")
            x_BTND, kv_cache = stack(x_BTND, kv_cache, cache_index, spatial_rotary_NF)
        else:
            new_layers = []
            for i in range(self.num_layers):
                layer_cache = None if kv_cache is None else (kv_cache[0][i], kv_cache[1][i])
                x_BTND, layer_cache = block_cls(**block_kwargs, name=f"block_{i}")(
                    x_BTND, layer_cache, cache_index, spatial_rotary_NF
                )
                new_layers.append(layer_cache)
            if kv_cache is not None:
                kv_cache = tuple(jnp.stack([layer[j] for layer in new_layers]) for j in range(2))
        x_BTND = _layer_norm("final_norm", self.param_dtype)(x_BTND)
        if kv_cache is None:
            return x_BTND
        return x_BTND, kv_cache


def stack_options(config) -> dict[str, Any]:
    """The STTransformer settings every model config shares (causal in time)."""
    return dict(
        qk_norm=config.qk_norm,
        causal_time=True,
        dtype=config.jnp_dtype,
        param_dtype=config.jnp_param_dtype,
        scan_layers=config.scan_layers,
        remat_policy=config.remat_policy,
    )
