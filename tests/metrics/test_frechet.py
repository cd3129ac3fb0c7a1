"""Fréchet distance against an independent float64 reference."""

import numpy as np
import pytest

from genie_jax.metrics import frechet_distance, gaussian_stats


def _reference(mu1, s1, mu2, s2) -> float:
    # tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2)), both symmetric PSD: use eigh.
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    w2 = np.linalg.eigvalsh((inner + inner.T) / 2)
    return float(
        np.sum((mu1 - mu2) ** 2)
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.sum(np.sqrt(np.clip(w2, 0, None)))
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(loc=0.5, size=(300, 12)) @ rng.normal(size=(12, 12))
    stats_a, stats_b = gaussian_stats(a), gaussian_stats(b)
    expected = _reference(*stats_a, *stats_b)
    assert frechet_distance(*stats_a, *stats_b) == pytest.approx(expected, rel=1e-6)
    assert expected > 1.0


def test_identical_sets_give_zero_and_shift_gives_its_square():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(a)) == pytest.approx(0, abs=1e-8)
    shifted = a + 3.0
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(shifted)) == pytest.approx(
        8 * 9.0, rel=1e-6
    )


def test_needs_two_vectors():
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_stats(np.zeros((1, 4)))
