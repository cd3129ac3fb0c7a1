"""Latent -> real actions (Genie §3.3): a map fitted on a few labelled transitions.

The map is a majority vote: each latent code maps to the real action most often seen with it
among at most `max_labels` labelled transitions (codes never seen map to the overall most
frequent action). Agreement is measured on held-out transitions, next to the baseline of
always answering the most frequent labelled action.
"""

import numpy as np


def fit_majority_map(latent_M: np.ndarray, real_M: np.ndarray, num_latent: int) -> np.ndarray:
    """[num_latent] real action for each latent code."""
    latent_M, real_M = np.asarray(latent_M).ravel(), np.asarray(real_M).ravel()
    if latent_M.shape != real_M.shape or latent_M.size == 0:
        raise ValueError(f"need matching non-empty labels, got {latent_M.shape}, {real_M.shape}")
    num_real = int(real_M.max()) + 1
    counts = np.zeros((num_latent, num_real), np.int64)
    np.add.at(counts, (latent_M, real_M), 1)
    fallback = int(np.bincount(real_M).argmax())
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), fallback)


def latent_to_real_agreement(
    fit_latent: np.ndarray,
    fit_real: np.ndarray,
    test_latent: np.ndarray,
    test_real: np.ndarray,
    *,
    num_latent: int,
    max_labels: int = 200,
) -> dict:
    """Fits on the first `max_labels` labelled transitions, scores on the test transitions."""
    fit_latent, fit_real = np.ravel(fit_latent)[:max_labels], np.ravel(fit_real)[:max_labels]
    mapping = fit_majority_map(fit_latent, fit_real, num_latent)
    test_latent, test_real = np.ravel(test_latent), np.ravel(test_real)
    majority = int(np.bincount(fit_real).argmax())
    return {
        "agreement": float(np.mean(mapping[test_latent] == test_real)),
        "majority_baseline": float(np.mean(test_real == majority)),
        "labels_used": int(fit_latent.size),
        "test_transitions": int(test_real.size),
        "map": mapping.tolist(),
    }
