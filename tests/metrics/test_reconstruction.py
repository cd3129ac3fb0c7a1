"""Reconstruction PSNR and SSIM against independent float64 references."""

import numpy as np
import pytest
import scipy.signal

from genie_jax.metrics import psnr, ssim


def _video(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.uniform(0, 1, (2, 3, 24, 24, 3))
    prediction = np.clip(target + rng.normal(0, 0.1, target.shape), 0, 1)
    return target, prediction


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), valid region, per channel."""
    ax = np.arange(11) - 5
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.sum(np.outer(g, g))
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for frame_x, frame_y in zip(x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])):
        maps = []
        for c in range(frame_x.shape[-1]):
            a, b = frame_x[..., c], frame_y[..., c]

            def blur(z):
                return scipy.signal.convolve2d(z, window, mode="valid")

            mu_a, mu_b = blur(a), blur(b)
            var_a = blur(a * a) - mu_a**2
            var_b = blur(b * b) - mu_b**2
            cov = blur(a * b) - mu_a * mu_b
            maps.append(
                ((2 * mu_a * mu_b + c1) * (2 * cov + c2))
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
        values.append(np.mean(maps))
    return float(np.mean(values))


@pytest.mark.parametrize("seed", [0, 1])
def test_psnr_matches_reference(seed):
    target, prediction = _video(seed)
    mse = np.mean((target - prediction) ** 2, axis=(2, 3, 4))
    expected = np.mean(10 * np.log10(1.0 / mse))
    assert float(psnr(target, prediction)) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_matches_reference(seed):
    target, prediction = _video(seed)
    expected = _ssim_reference(target, prediction)
    assert float(ssim(target, prediction)) == pytest.approx(expected, abs=1e-4)
    assert 0.0 < expected < 0.99
