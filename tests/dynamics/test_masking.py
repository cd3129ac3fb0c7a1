"""The MaskGIT training mask: one rate per sample, frame 0 never masked."""

import jax
import numpy as np
import pytest

from genie_jax.dynamics import sample_training_mask

B, T, N = 64, 4, 256


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")


def _mask_BTN(seed: int = 0, shape=(B, T, N), **rates) -> np.ndarray:
    rates = {"min_rate": 0.5, "max_rate": 1.0, **rates}
    return np.asarray(sample_training_mask(_key(seed), shape, **rates))


def test_shape_and_dtype():
    """A boolean [B, T, N] mask, True where the token is hidden."""
    mask_BTN = _mask_BTN(shape=(3, 5, 7))
    assert mask_BTN.shape == (3, 5, 7)
    assert mask_BTN.dtype == np.bool_


@pytest.mark.parametrize("seed", [0, 1])
def test_first_frame_is_never_masked(seed):
    """Frame 0 is the context every prediction starts from; masking it would train the model
    to predict without context, unlike sampling."""
    mask_BTN = _mask_BTN(seed, min_rate=0.9, max_rate=1.0)
    assert not mask_BTN[:, 0].any()
    assert mask_BTN[:, 1:].mean() > 0.85


def test_each_sample_draws_its_own_rate():
    """Per-sample rates spread over [0.5, 1] (std of U[0.5, 1] is 0.144); a single rate for the
    whole batch (a GENIE_FACTS pitfall) would give a spread of pure binomial noise, ~0.016."""
    rate_B = _mask_BTN()[:, 1:].mean(axis=(1, 2))
    assert rate_B.std() > 0.1
    assert 0.45 <= rate_B.min() < 0.6
    assert 0.9 < rate_B.max() <= 1.0


def test_rate_is_shared_by_the_frames_of_a_sample():
    """The rate is drawn per sample, not per frame: frames 1 and 2 of a sample are masked at the
    same rate, so their masked fractions track each other across the batch."""
    mask_BTN = _mask_BTN()
    frame1_B, frame2_B = mask_BTN[:, 1].mean(axis=-1), mask_BTN[:, 2].mean(axis=-1)
    assert np.corrcoef(frame1_B, frame2_B)[0, 1] > 0.8
    np.testing.assert_allclose(frame1_B, frame2_B, atol=0.12)


def test_mean_rate_is_the_middle_of_the_range():
    """E[r] = (0.5 + 1) / 2 = 0.75 for r ~ U[0.5, 1]; 64 samples put the mean within 0.05."""
    assert abs(_mask_BTN()[:, 1:].mean() - 0.75) < 0.05
    assert abs(_mask_BTN(min_rate=0.1, max_rate=0.3)[:, 1:].mean() - 0.2) < 0.03


def test_degenerate_rates():
    """Rate 1 hides every token of frames 1..T-1, rate 0 none."""
    all_BTN = _mask_BTN(min_rate=1.0, max_rate=1.0)
    assert all_BTN[:, 1:].all() and not all_BTN[:, 0].any()
    assert not _mask_BTN(min_rate=0.0, max_rate=0.0).any()


def test_mask_depends_on_the_rng():
    """Same key, same mask; another key, another mask."""
    np.testing.assert_array_equal(_mask_BTN(0), _mask_BTN(0))
    assert not np.array_equal(_mask_BTN(0), _mask_BTN(1))
