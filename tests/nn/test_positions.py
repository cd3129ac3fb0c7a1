"""Grid positions: `GridPositionEmbedding` gives token n of an H x W grid row[n // W] +
col[n % W]."""

import jax
import numpy as np

from genie_jax.nn import GridPositionEmbedding


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
