"""Grid positions: `GridPositionEmbedding` gives token n of an H x W grid row[n // W] +
col[n % W]; `GridCoordinateEmbedding` a learned map of fixed coordinate features."""

import jax
import numpy as np

from genie_jax.nn import GridCoordinateEmbedding, GridPositionEmbedding, grid_coordinate_features


def test_each_token_gets_its_row_and_column():
    module = GridPositionEmbedding(rows=3, cols=4, dim=5)
    params = module.init(jax.random.key(0))["params"]
    row_HD = np.asarray(params["row"].unbox())
    col_WD = np.asarray(params["col"].unbox())
    assert row_HD.shape == (3, 5) and col_WD.shape == (4, 5)
    out_ND = np.asarray(module.apply({"params": params}))
    assert out_ND.shape == (12, 5)
    for n in range(12):
        np.testing.assert_allclose(out_ND[n], row_HD[n // 4] + col_WD[n % 4], rtol=1e-6)


def _features_by_hand(rows, cols, octaves=3):
    out = []
    for n in range(rows * cols):
        r, c = divmod(n, cols)
        feats = []
        for i, count in ((r, rows), (c, cols)):
            u = -1.0 + 2.0 * i / (count - 1)
            angles = [np.pi * u * 2**k for k in range(octaves)]
            feats += [u, *np.sin(angles), *np.cos(angles)]
        out.append(feats)
    return np.asarray(out)


def test_coordinate_features_by_hand():
    features_NF = np.asarray(grid_coordinate_features(3, 4))
    assert features_NF.shape == (12, 14)
    np.testing.assert_allclose(features_NF, _features_by_hand(3, 4), atol=1e-6)
    # The first feature of each axis is linear in the index: an offset is a difference.
    assert np.allclose(features_NF[4, 0] - features_NF[0, 0], features_NF[8, 0] - features_NF[4, 0])


def test_coordinate_embedding_is_a_linear_map_of_the_features():
    module = GridCoordinateEmbedding(rows=3, cols=4, dim=5)
    params = module.init(jax.random.key(0))["params"]
    kernel_FD = np.asarray(params["kernel"].unbox())
    assert kernel_FD.shape == (14, 5) and 0.005 < kernel_FD.std() < 0.05
    out_ND = np.asarray(module.apply({"params": params}))
    np.testing.assert_allclose(out_ND, _features_by_hand(3, 4) @ kernel_FD, atol=1e-6)
