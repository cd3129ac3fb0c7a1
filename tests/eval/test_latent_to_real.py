"""The latent -> real action map (majority vote per latent code)."""

import numpy as np
import pytest

from genie_jax.eval.latent_to_real import fit_majority_map, latent_to_real_agreement


def test_majority_vote_per_code_and_fallback_for_unseen_codes():
    latent = np.array([0, 0, 0, 1, 1, 2])
    real = np.array([5, 5, 3, 7, 7, 3])
    mapping = fit_majority_map(latent, real, num_latent=4)
    assert mapping.tolist() == [5, 7, 3, 3]  # code 3 unseen: the most frequent action (3 or 5)
    assert mapping[3] in (3, 5)


def test_agreement_recovers_a_hidden_relabelling():
    """Latent codes that are a permutation of the real actions (plus 10% noise) must map back
    with ~90% agreement from 200 labels, far above the majority baseline."""
    rng = np.random.default_rng(0)
    real = rng.integers(0, 6, 2000)
    permutation = rng.permutation(6)
    latent = permutation[real]
    noisy = rng.random(real.size) < 0.1
    latent[noisy] = rng.integers(0, 6, noisy.sum())
    result = latent_to_real_agreement(
        latent[:1000], real[:1000], latent[1000:], real[1000:], num_latent=6, max_labels=200
    )
    assert result["labels_used"] == 200 and result["test_transitions"] == 1000
    assert result["agreement"] == pytest.approx(0.9 + 0.1 / 6, abs=0.04)
    assert result["majority_baseline"] < 0.25


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="matching"):
        fit_majority_map(np.zeros(3, int), np.zeros(4, int), num_latent=2)
