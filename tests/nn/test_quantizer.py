"""Vector quantizer: nearest-code lookup, straight-through, losses, usage, dead-code reset."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.nn import VectorQuantizer, reset_dead_codes
from genie_jax.nn.quantizer import nearest_codes

V, E = 8, 4


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")  # compiles faster than threefry on CPU


def _init(vq: VectorQuantizer, z: jax.Array, seed: int = 0) -> dict:
    return nn.meta.unbox(vq.init(_key(seed), z, train=False))


def _variables(codebook_VE, steps_unused_V=None) -> dict:
    if steps_unused_V is None:
        steps_unused_V = np.zeros(len(codebook_VE), np.int32)
    return {
        "params": {"codebook": jnp.asarray(codebook_VE, jnp.float32)},
        "vq_stats": {"steps_unused": jnp.asarray(steps_unused_V, jnp.int32)},
    }


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _brute_force(z_XE: np.ndarray, codebook_VE: np.ndarray) -> np.ndarray:
    dist = np.sum((z_XE[..., None, :] - codebook_VE) ** 2, axis=-1)  # [..., V]
    return np.argmin(dist, axis=-1)


@pytest.mark.parametrize("normalize", [False, True])
def test_indices_match_brute_force(normalize):
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=normalize)
    z = 2.0 * jax.random.normal(_key(1), (3, 5, E))
    variables = _init(vq, z)
    q, aux = jax.jit(lambda v, z: vq.apply(v, z, train=False))(variables, z)
    codebook = np.asarray(variables["params"]["codebook"], np.float64)
    z64 = np.asarray(z, np.float64)
    if normalize:
        codebook, z64 = _l2n(codebook), _l2n(z64)
    expected = _brute_force(z64, codebook)
    assert aux["indices"].shape == (3, 5)
    assert np.all((aux["indices"] >= 0) & (aux["indices"] < V))
    np.testing.assert_array_equal(aux["indices"], expected)
    assert len(np.unique(expected)) > 1  # a non-trivial case
    # The forward value is the chosen (effective) code: bit-exact for raw codes; normalized
    # codes are recomputed here by another XLA program, which may round differently.
    effective = vq.apply(variables, method=VectorQuantizer.codes)
    looked_up = vq.apply(variables, aux["indices"], method=VectorQuantizer.lookup)
    assert q.shape == z.shape and q.dtype == jnp.float32
    atol = 1e-6 if normalize else 0.0
    np.testing.assert_allclose(q, np.asarray(effective)[np.asarray(aux["indices"])], atol=atol)
    np.testing.assert_allclose(looked_up, q, atol=atol)


def test_straight_through_gradient():
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=False)
    z = jax.random.normal(_key(1), (6, E))
    w = jax.random.normal(_key(2), (6, E))
    variables = _init(vq, z)

    def objective(params, z):
        q, _ = vq.apply({**variables, "params": params}, z, train=False)
        return jnp.sum(q * w)

    q, aux = vq.apply(variables, z, train=False)
    codebook = np.asarray(variables["params"]["codebook"])
    np.testing.assert_array_equal(q, codebook[np.asarray(aux["indices"])])  # exactly the code
    grad_params, grad_z = jax.grad(objective, argnums=(0, 1))(variables["params"], z)
    np.testing.assert_array_equal(grad_z, w)  # identity: exactly w
    # No reconstruction gradient reaches the codebook; it learns from the codebook loss only.
    np.testing.assert_array_equal(grad_params["codebook"], 0.0)


@pytest.mark.parametrize("normalize", [False, True])
def test_loss_values_match_numpy(normalize):
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=normalize, commitment_weight=0.3)
    z = jax.random.normal(_key(3), (10, E))
    variables = _init(vq, z)
    _, aux = vq.apply(variables, z, train=False)
    codebook = np.asarray(variables["params"]["codebook"], np.float64)
    z64 = np.asarray(z, np.float64)
    if normalize:
        codebook, z64 = _l2n(codebook), _l2n(z64)
    q = codebook[_brute_force(z64, codebook)]
    mse = np.mean((z64 - q) ** 2)
    np.testing.assert_allclose(aux["codebook_loss"], mse, rtol=1e-5)
    np.testing.assert_allclose(aux["commitment_loss"], mse, rtol=1e-5)
    np.testing.assert_allclose(aux["loss"], mse * (1 + 0.3), rtol=1e-5)


def test_loss_gradients_reach_the_right_side():
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=False)
    z = jax.random.normal(_key(4), (12, E))
    variables = _init(vq, z)

    def loss(params, z, name):
        _, aux = vq.apply({**variables, "params": params}, z, train=False)
        return aux[name]

    params = variables["params"]
    cb_params, cb_z = jax.grad(loss, argnums=(0, 1))(params, z, "codebook_loss")
    np.testing.assert_array_equal(cb_z, 0.0)
    # d/dc_v mean((z - c_idx)^2) = -2 / (M E) * sum over inputs assigned to v of (z - c_v).
    _, aux = vq.apply(variables, z, train=False)
    idx = np.asarray(aux["indices"])
    codebook = np.asarray(params["codebook"])
    expected = np.zeros_like(codebook)
    np.add.at(expected, idx, -2.0 * (np.asarray(z) - codebook[idx]) / z.size)
    np.testing.assert_allclose(cb_params["codebook"], expected, atol=1e-6)
    used = np.isin(np.arange(V), idx)
    assert np.all(np.any(cb_params["codebook"][used] != 0, axis=-1))
    assert np.all(cb_params["codebook"][~used] == 0)

    cm_params, cm_z = jax.grad(loss, argnums=(0, 1))(params, z, "commitment_loss")
    np.testing.assert_array_equal(cm_params["codebook"], 0.0)
    np.testing.assert_allclose(cm_z, 2.0 * (np.asarray(z) - codebook[idx]) / z.size, atol=1e-6)


def _fixed_codebook() -> np.ndarray:
    return np.asarray(jax.random.normal(_key(5), (V, E)))


def test_nearest_codes_take_the_first_of_equal_minima_like_argmin():
    codes_VE = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    z_ME = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.6], [-1.0, 0.0]], np.float32)
    indices_M, distance_M = jax.jit(nearest_codes)(z_ME, codes_VE)
    # Row 2 is as close to all four codes; row 3 ties codes 1 and 3.
    np.testing.assert_array_equal(indices_M, [0, 1, 0, 1])
    np.testing.assert_array_equal(indices_M, np.argmin(_distances(z_ME, codes_VE), axis=-1))
    np.testing.assert_allclose(distance_M, np.min(_distances(z_ME, codes_VE), axis=-1))


def _distances(z_ME: np.ndarray, codes_VE: np.ndarray) -> np.ndarray:
    return np.sum((z_ME[:, None, :] - codes_VE[None]) ** 2, axis=-1)


@pytest.mark.parametrize("used", [(0,), (1, 4, 6), tuple(range(V))])
def test_usage_and_perplexity(used):
    codebook = _fixed_codebook()
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=False)
    z = codebook[np.repeat(np.array(used), 3)]  # each used code hit exactly 3 times
    _, aux = vq.apply(_variables(codebook), z, train=False)
    k = len(used)
    np.testing.assert_allclose(aux["usage"], k / V, rtol=1e-6)
    np.testing.assert_allclose(aux["perplexity"], k, rtol=1e-5)
    np.testing.assert_array_equal(aux["counts"], np.bincount(np.repeat(used, 3), minlength=V))


def test_perplexity_of_non_uniform_usage():
    codebook = _fixed_codebook()
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=False)
    z = codebook[[2, 2, 2, 5]]
    _, aux = vq.apply(_variables(codebook), z, train=False)
    p = np.array([0.75, 0.25])
    np.testing.assert_allclose(aux["perplexity"], np.exp(-np.sum(p * np.log(p))), rtol=1e-5)
    np.testing.assert_allclose(aux["usage"], 2 / V)


def test_steps_unused_counter():
    codebook = _fixed_codebook()
    vq = VectorQuantizer(codebook_size=V, code_dim=E, normalize=False)
    z = codebook[[0, 1, 2, 1]]
    start = np.array([3, 0, 7, 3, 3, 0, 1, 3])
    variables = _variables(codebook, start)

    used = np.isin(np.arange(V), [0, 1, 2])
    _, state = vq.apply(variables, z, train=True, mutable=["vq_stats"])
    np.testing.assert_array_equal(state["vq_stats"]["steps_unused"], np.where(used, 0, start + 1))
    _, state = vq.apply({**variables, **state}, z, train=True, mutable=["vq_stats"])
    np.testing.assert_array_equal(state["vq_stats"]["steps_unused"], np.where(used, 0, start + 2))

    # Evaluation never touches the counters.
    _, state = vq.apply(variables, z, train=False, mutable=["vq_stats"])
    np.testing.assert_array_equal(state["vq_stats"]["steps_unused"], start)
    # Nor does init, even in train mode.
    init_state = vq.init(_key(0), z, train=True)["vq_stats"]["steps_unused"]
    np.testing.assert_array_equal(init_state, np.zeros(V))


# -- dead-code reset ---------------------------------------------------------------------------


def test_reset_dead_codes_moves_only_dead_codes():
    codebook = _fixed_codebook()
    steps = np.array([0, 5, 2, 7, 0, 9, 4, 5], np.int32)
    threshold, noise_scale = 5, 0.05
    other_codebook = np.asarray(jax.random.normal(_key(6), (4, E)))
    params = {
        "lam": {"quantizer": {"codebook": jnp.asarray(codebook)}, "dense": {"kernel": jnp.ones(3)}},
        "other": {"codebook": jnp.asarray(other_codebook)},
    }
    stats = {
        "lam": {"quantizer": {"steps_unused": jnp.asarray(steps)}},
        "other": {"steps_unused": jnp.array([9, 0, 0, 0], jnp.int32)},
    }
    new_params, new_stats, num_reset = jax.jit(
        lambda p, s, r: reset_dead_codes(p, s, r, threshold=threshold, noise_scale=noise_scale)
    )(params, stats, _key(7))

    dead = steps >= threshold
    assert int(num_reset) == dead.sum() + 1
    new_codebook = np.asarray(new_params["lam"]["quantizer"]["codebook"])
    np.testing.assert_array_equal(new_codebook[~dead], codebook[~dead])  # bit-identical
    assert np.all(np.any(new_codebook[dead] != codebook[dead], axis=-1))
    # Each revived code is a live code plus small noise.
    bound = 4.0 * noise_scale * np.std(codebook) * np.sqrt(E)
    dist_to_live = np.linalg.norm(new_codebook[dead, None] - codebook[None, ~dead], axis=-1)
    assert np.all(dist_to_live.min(axis=1) < bound)
    # ...and no dead code was already that close to a live one (so the check above is real).
    old_dist = np.linalg.norm(codebook[dead, None] - codebook[None, ~dead], axis=-1)
    assert np.all(old_dist.min(axis=1) > bound)

    new_steps = np.asarray(new_stats["lam"]["quantizer"]["steps_unused"])
    np.testing.assert_array_equal(new_steps, np.where(dead, 0, steps))
    np.testing.assert_array_equal(new_stats["other"]["steps_unused"], [0, 0, 0, 0])
    np.testing.assert_array_equal(new_params["other"]["codebook"][1:], other_codebook[1:])
    assert not np.array_equal(new_params["other"]["codebook"][0], other_codebook[0])
    np.testing.assert_array_equal(new_params["lam"]["dense"]["kernel"], np.ones(3))


def test_reset_dead_codes_nothing_dead_is_identity():
    codebook = _fixed_codebook()
    params = {"q": {"codebook": jnp.asarray(codebook)}}
    stats = {"q": {"steps_unused": jnp.arange(V, dtype=jnp.int32)}}
    new_params, new_stats, num_reset = reset_dead_codes(params, stats, _key(0), threshold=V)
    assert int(num_reset) == 0
    np.testing.assert_array_equal(new_params["q"]["codebook"], codebook)
    np.testing.assert_array_equal(new_stats["q"]["steps_unused"], np.arange(V))


def test_reset_dead_codes_requires_a_codebook():
    with pytest.raises(KeyError, match="q/steps_unused"):
        reset_dead_codes(
            {"q": {"kernel": jnp.ones((V, E))}},
            {"q": {"steps_unused": jnp.zeros(V, jnp.int32)}},
            _key(0),
            threshold=1,
        )


def test_dead_code_reset_revives_codes():
    """A collapsed quantizer (1 of 8 codes in use) uses more codes after a reset."""
    vq = VectorQuantizer(codebook_size=V, code_dim=E)  # normalized, as in the models
    z0 = jnp.zeros((16, E))
    variables = _init(vq, z0)
    step = jax.jit(lambda v, z: vq.apply(v, z, train=True, mutable=["vq_stats"]))
    codes = vq.apply(variables, method=VectorQuantizer.codes)
    # Training inputs cluster around code 0 only.
    z_train = codes[0] + 0.01 * jax.random.normal(_key(1), (16, E))
    for _ in range(3):
        (_, aux), state = step(variables, z_train)
        variables = {**variables, **state}
        np.testing.assert_array_equal(aux["indices"], 0)
    np.testing.assert_array_equal(variables["vq_stats"]["steps_unused"], [0] + [3] * (V - 1))

    params, stats, num_reset = reset_dead_codes(
        variables["params"], variables["vq_stats"], _key(2), threshold=3, noise_scale=0.3
    )
    assert int(num_reset) == V - 1
    revived = params["codebook"]
    probes = revived + 1e-3 * jax.random.normal(_key(3), revived.shape)

    (_, before), _ = step(variables, probes)
    (_, after), _ = step({"params": params, "vq_stats": stats}, probes)
    assert float(after["usage"]) > float(before["usage"])
    assert float(after["usage"]) == 1.0  # every revived code wins its own probe
    # The one live code still serves the training inputs.
    (_, again), _ = step({"params": params, "vq_stats": stats}, z_train)
    np.testing.assert_array_equal(again["indices"], 0)


def test_dead_codes_move_onto_the_worst_fit_inputs():
    """Data-dependent reset: a collapsed quantizer whose inputs form two clusters, both served
    by one code, must split them after a reset (revived copies of the live code would not)."""
    vq = VectorQuantizer(codebook_size=V, code_dim=E)
    variables = _init(vq, jnp.zeros((16, E)))
    step = jax.jit(lambda v, z: vq.apply(v, z, train=True, mutable=["vq_stats"]))
    codes = vq.apply(variables, method=VectorQuantizer.codes)
    # Most inputs sit on code 0; a few lie farther off in one direction, still nearest code 0.
    offset = 0.3 * jax.random.normal(_key(4), (E,))
    near = codes[0] + 0.01 * jax.random.normal(_key(1), (12, E))
    far = codes[0] + offset + 0.01 * jax.random.normal(_key(5), (4, E))
    z_train = jnp.concatenate([near, far])
    (_, aux), state = step(variables, z_train)
    assert int(np.sum(np.asarray(aux["counts"]) > 0)) == 1  # collapsed before the reset
    worst = np.asarray(state["vq_stats"]["worst_inputs"])
    far_normalized = far / jnp.linalg.norm(far, axis=-1, keepdims=True)
    # The four farthest inputs come first.
    dist = np.linalg.norm(worst[:4, None] - np.asarray(far_normalized)[None], axis=-1)
    assert np.all(dist.min(axis=1) < 1e-5)

    params, stats, num_reset = reset_dead_codes(
        variables["params"], state["vq_stats"], _key(2), threshold=1, noise_scale=0.01
    )
    assert int(num_reset) == V - 1
    (_, after), _ = step({"params": params, "vq_stats": stats}, z_train)
    assert int(np.sum(np.asarray(after["counts"]) > 0)) >= 2
    assert set(np.asarray(after["indices"])[12:].tolist()).isdisjoint({0})
