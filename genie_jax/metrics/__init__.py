"""Evaluation metrics (reconstruction quality now; ΔtPSNR, FVD and codebook usage follow)."""

from genie_jax.metrics.reconstruction import psnr, ssim

__all__ = ["psnr", "ssim"]
