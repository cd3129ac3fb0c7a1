"""Derived properties shared by the model configs (frozen dataclasses of plain values)."""

import jax.numpy as jnp


class DtypeFields:
    """`dtype` / `param_dtype` strings (JSON-friendly) as jnp dtypes."""

    dtype: str
    param_dtype: str

    @property
    def jnp_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)


class PatchGridFields:
    """Square frames cut into square patches: the patch grid and tokens per frame."""

    frame_size: int
    patch_size: int

    @property
    def grid_size(self) -> int:
        """Patches per side (H = W)."""
        if self.frame_size % self.patch_size:
            raise ValueError(
                f"frame_size {self.frame_size} is not divisible by patch_size {self.patch_size}"
            )
        return self.frame_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens per frame, N."""
        return self.grid_size**2
