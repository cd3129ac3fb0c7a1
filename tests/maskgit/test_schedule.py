"""MaskGIT's cosine schedule: how many of N tokens stay masked after each decoding step."""

import math

import numpy as np
import pytest

from genie_jax.maskgit import cosine_mask_ratio, masked_after_step

CASES = [(1, 1), (16, 1), (16, 4), (16, 8), (16, 25), (7, 3), (256, 25), (3, 10)]


@pytest.mark.parametrize(("num_tokens", "steps"), CASES)
def test_counts_are_non_increasing_in_range_and_end_at_zero(num_tokens, steps):
    """Otherwise decoding would re-mask tokens, leave masked tokens at the end, or (at the start)
    reveal nothing in the first step."""
    counts_S = masked_after_step(num_tokens, steps)
    assert counts_S.shape == (steps,)
    assert np.issubdtype(counts_S.dtype, np.integer)
    assert np.all(counts_S >= 0) and np.all(counts_S < num_tokens)
    assert np.all(np.diff(counts_S) <= 0), counts_S
    assert counts_S[-1] == 0
    assert counts_S[0] < num_tokens


@pytest.mark.parametrize(("num_tokens", "steps"), CASES)
def test_counts_follow_floor_n_cos(num_tokens, steps):
    """The schedule is floor(N cos(pi/2 (s+1)/S)); a linear or off-by-one schedule would fail."""
    expected_S = [
        math.floor(num_tokens * math.cos(math.pi / 2 * (s + 1) / steps)) for s in range(steps)
    ]
    expected_S[-1] = 0  # cos(pi/2) is 6e-17 in floats, but the last step must reveal all
    np.testing.assert_array_equal(masked_after_step(num_tokens, steps), expected_S)


def test_known_values():
    """Hand-computed: 16 cos(pi/8 * (s+1)) = 14.78, 11.31, 6.12, 0."""
    np.testing.assert_array_equal(masked_after_step(16, 4), [14, 11, 6, 0])
    # 16 cos(pi/6) = 13.86 and 16 cos(pi/3) = 8 (an integer: not floored to 7).
    np.testing.assert_array_equal(masked_after_step(16, 3), [13, 8, 0])


def test_cosine_mask_ratio_endpoints():
    """Progress 0 masks everything, progress 1 nothing; halfway is cos(pi/4)."""
    assert cosine_mask_ratio(0.0) == 1.0
    assert abs(cosine_mask_ratio(1.0)) < 1e-12
    assert cosine_mask_ratio(0.5) == pytest.approx(math.sqrt(0.5))


@pytest.mark.parametrize("steps", [0, -1])
def test_fewer_than_one_step_raises(steps):
    """Zero steps would decode nothing and leave the whole frame masked."""
    with pytest.raises(ValueError, match="at least one step"):
        masked_after_step(16, steps)
