"""Reconstruction PSNR and SSIM on pixels in [0, 1], through dm_pix."""

import dm_pix
import jax
import jax.numpy as jnp


def _frames(target: jax.Array, prediction: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Flattens leading axes to frames [M, H, W, C]; clips the prediction to [0, 1]."""
    if target.shape != prediction.shape:
        raise ValueError(f"shape mismatch: target {target.shape} vs prediction {prediction.shape}")
    frame_shape = target.shape[-3:]
    target_MHWC = target.reshape(-1, *frame_shape).astype(jnp.float32)
    prediction_MHWC = jnp.clip(prediction.reshape(-1, *frame_shape).astype(jnp.float32), 0.0, 1.0)
    return target_MHWC, prediction_MHWC


def psnr(target_BTHWC: jax.Array, prediction_BTHWC: jax.Array) -> jax.Array:
    """Mean over frames of the per-frame PSNR in dB; both inputs in [0, 1], prediction clipped."""
    target_MHWC, prediction_MHWC = _frames(target_BTHWC, prediction_BTHWC)
    return jnp.mean(dm_pix.psnr(target_MHWC, prediction_MHWC))


def ssim(target_BTHWC: jax.Array, prediction_BTHWC: jax.Array) -> jax.Array:
    """Mean over frames of the per-frame SSIM (11x11 Gaussian window, sigma 1.5)."""
    target_MHWC, prediction_MHWC = _frames(target_BTHWC, prediction_BTHWC)
    return jnp.mean(dm_pix.ssim(target_MHWC, prediction_MHWC))
