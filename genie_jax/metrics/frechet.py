"""Fréchet distance between Gaussians fitted to two feature sets (FID / FVD), in float64."""

import numpy as np
import scipy.linalg


def gaussian_stats(features_MF: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [F], covariance [F, F]) of M feature vectors, float64, unbiased covariance."""
    features_MF = np.asarray(features_MF, np.float64)
    if features_MF.ndim != 2 or features_MF.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [M, F], got {features_MF.shape}")
    return features_MF.mean(axis=0), np.cov(features_MF, rowvar=False)


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    The matrix square root comes from scipy; its tiny imaginary part (numerical noise) is
    dropped, and a singular product (fewer samples than feature dimensions) gets a small
    diagonal offset, as in the reference FID code.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    diff = mean_a - mean_b
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(distance, 0.0))
