"""Evaluation metrics: reconstruction PSNR/SSIM, ΔtPSNR (controllability), FVD.

`fvd` imports the I3D network lazily (on first use).
"""

from genie_jax.metrics.controllability import (
    controllability_psnr,
    psnr_per_frame,
    summarize_controllability,
)
from genie_jax.metrics.frechet import frechet_distance, gaussian_stats
from genie_jax.metrics.reconstruction import psnr, ssim

__all__ = [
    "controllability_psnr",
    "frechet_distance",
    "gaussian_stats",
    "psnr",
    "psnr_per_frame",
    "ssim",
    "summarize_controllability",
]
