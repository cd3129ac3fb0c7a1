"""A Dense layer whose kernel and bias carry logical axis names, in a config's dtypes."""

import flax.linen as nn


def logical_dense(features: int, axes: tuple[str, str], config, name: str) -> nn.Dense:
    """`config` supplies `jnp_dtype` / `jnp_param_dtype` (see `DtypeFields`); `axes` names the
    kernel's (in, out) axes, the bias gets the out axis."""
    return nn.Dense(
        features,
        dtype=config.jnp_dtype,
        param_dtype=config.jnp_param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
        name=name,
    )
