"""Latent action model: shapes, ranges, and the alignment of ã_t with x_t -> x_{t+1}."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.lam import LAMConfig, LatentActionModel

CONFIG = LAMConfig(
    frame_size=16,
    patch_size=8,
    max_frames=6,
    encoder_layers=1,
    encoder_dim=32,
    encoder_heads=2,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=2,
    mlp_ratio=2,
    num_actions=4,
    latent_dim=8,
)
B, T, S, C = 2, 5, CONFIG.frame_size, CONFIG.channels
A, E = CONFIG.num_actions, CONFIG.latent_dim


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")  # compiles faster than threefry on CPU


def _video(batch: int = B, frames: int = T, seed: int = 0) -> jax.Array:
    return jax.random.uniform(_key(seed), (batch, frames, S, S, C))


def _random_variables(model: LatentActionModel) -> dict:
    """Random weights in `model.init`'s layout, without compiling the init (seconds on CPU).

    Matrices ~ N(0, 0.2^2), vectors ~ N(0, 0.1^2), norm scales ~ 1 + N(0, 0.1^2), the
    quantizer's usage counters zero.
    """
    shapes = nn.meta.unbox(jax.eval_shape(model.init, _key(1), _video()))
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = getattr(path[-1], "key", "")
        if name == "steps_unused":
            return jnp.zeros(leaf.shape, leaf.dtype)
        noise = rng.standard_normal(leaf.shape).astype(np.float32)
        if name == "scale":
            return jnp.asarray(1.0 + 0.1 * noise)
        return jnp.asarray((0.2 if len(leaf.shape) >= 2 else 0.1) * noise)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.cache
def _setup() -> tuple[LatentActionModel, dict]:
    """(model, variables) built once for the module."""
    model = LatentActionModel(CONFIG)
    return model, _random_variables(model)


def _is_to_latent(module: nn.Module, method_name: str) -> bool:
    return module.name == "to_latent"


@functools.cache
def _dependencies() -> tuple[np.ndarray, np.ndarray]:
    """How much the pre-quantizer latents z_t and the predictions depend on each input frame.

    Returns (latent [T-1, T], prediction [T-1, T]): entry [t, k] is the summed |gradient| of a
    random projection of output t w.r.t. frame k, for one clip (one backward pass per output
    frame, not a full Jacobian). The latent is `to_latent`'s output, read with
    capture_intermediates: continuous, so its gradient involves no straight-through estimator.
    """
    model, variables = _setup()

    def outputs(video_THWC):
        (prediction_B, _), state = model.apply(
            variables, video_THWC[None], capture_intermediates=_is_to_latent
        )
        (z_BAE,) = state["intermediates"]["to_latent"]["__call__"]
        return z_BAE[0], prediction_B[0]

    @jax.jit
    def dependencies(video_THWC, w_z_AE, w_pred_AHWC):
        (z_AE, pred_AHWC), vjp = jax.vjp(outputs, video_THWC)
        # Cotangent i < T-1 projects z_i; i >= T-1 projects prediction i-(T-1).
        eye_AA, zeros_AA = jnp.eye(T - 1), jnp.zeros((T - 1, T - 1))
        z_select_2AA = jnp.concatenate([eye_AA, zeros_AA])
        pred_select_2AA = jnp.concatenate([zeros_AA, eye_AA])
        cotangents = (
            z_select_2AA[:, :, None] * w_z_AE,
            pred_select_2AA[:, :, None, None, None] * w_pred_AHWC,
        )

        def frame_grads(cotangent):
            (grad_THWC,) = vjp(cotangent)
            return jnp.sum(jnp.abs(grad_THWC), axis=(1, 2, 3))

        dep_2AT = jax.vmap(frame_grads)(cotangents)
        return dep_2AT[: T - 1], dep_2AT[T - 1 :]

    w_z_AE = jax.random.normal(_key(2), (T - 1, E))
    w_pred_AHWC = jax.random.normal(_key(3), (T - 1, S, S, C))
    latent_dep, prediction_dep = dependencies(_video(batch=1)[0], w_z_AE, w_pred_AHWC)
    return np.asarray(latent_dep), np.asarray(prediction_dep)


FIXED_INDICES_BA = jnp.array([[0, 3, 1, 2], [2, 2, 0, 1]], jnp.int32)  # any actions in 0..A-1


@functools.cache
def _run():
    """Jitted video -> dict of everything the model's public methods return, in one compiled
    function: `__call__`, `infer_actions`, `encode`, `lookup` of the indices, and `decode`
    with the actions held fixed at FIXED_INDICES_BA."""
    model, variables = _setup()

    def apply(*args, method):
        return model.apply(variables, *args, method=method)

    @jax.jit
    def run(video):
        prediction, aux = model.apply(variables, video)
        actions_BAE, _ = apply(video, method=LatentActionModel.encode)
        fixed_actions_BAE = apply(FIXED_INDICES_BA, method=LatentActionModel.lookup)
        return {
            "prediction": prediction,
            "indices": aux["indices"],
            "inferred": apply(video, method=LatentActionModel.infer_actions),
            "actions": actions_BAE,
            "codes": apply(aux["indices"], method=LatentActionModel.lookup),
            "decoded_with_fixed_actions": apply(
                video, fixed_actions_BAE, method=LatentActionModel.decode
            ),
        }

    return run


def test_call_shapes_and_ranges():
    """T frames give T-1 predictions (frames 1..T-1) in [0, 1] and T-1 action indices in
    0..A-1; `infer_actions` returns the same indices."""
    out = _run()(_video())
    prediction, indices = out["prediction"], np.asarray(out["indices"])
    assert prediction.shape == (B, T - 1, S, S, C) and prediction.dtype == jnp.float32
    assert np.all((prediction >= 0.0) & (prediction <= 1.0))
    assert indices.shape == (B, T - 1) and np.issubdtype(indices.dtype, np.integer)
    assert np.all((indices >= 0) & (indices < A))
    np.testing.assert_array_equal(out["inferred"], indices)


def test_encode_returns_the_codes_the_indices_name():
    """The quantized actions [B, T-1, E] are exactly the codebook rows of the indices."""
    out = _run()(_video())
    assert out["actions"].shape == (B, T - 1, E)
    np.testing.assert_array_equal(out["actions"], out["codes"])


def test_latent_action_t_sees_frames_up_to_t_plus_1_only():
    """z_t (from frame t+1's action token) depends on every frame 0..t+1 and on none after: if
    it missed x_{t+1} it could not describe x_t -> x_{t+1}; if it saw x_{t+2} the action
    would be read from the future."""
    latent_dep, _ = _dependencies()
    for t in range(T - 1):
        assert np.all(latent_dep[t, : t + 2] > 0.0), f"z_{t} ignores frames <= {t + 1}"
        assert np.all(latent_dep[t, t + 2 :] == 0.0), f"z_{t} sees frames > {t + 1}"


def test_prediction_of_frame_t_plus_1_sees_frames_up_to_t_plus_1_only():
    """Output t predicts x_{t+1} from x_0..x_t and ã_0..ã_t: it depends on x_t directly and on
    x_{t+1} only through ã_t (straight-through gradient), and never on a frame after t+1."""
    _, prediction_dep = _dependencies()
    for t in range(T - 1):
        assert np.all(prediction_dep[t, : t + 2] > 0.0), f"prediction {t} ignores its past"
        assert np.all(prediction_dep[t, t + 2 :] == 0.0), f"prediction {t} sees the future"


def test_changing_future_frames_changes_no_earlier_prediction_or_action():
    """The forward pass, discrete indices included: replacing frames k.. leaves the actions
    ã_0..ã_{k-2} and the predictions of frames 1..k-1 (outputs 0..k-2) bit for bit the same,
    while outputs k.. (which see x_k directly) change. Output k-1 sees x_k only through the
    discrete ã_{k-1}, so it may or may not change."""
    run = _run()
    video = _video()
    out = run(video)
    for k in (1, 2, T - 1):
        out_changed = run(video.at[:, k:].set(_video(seed=5)[:, k:]))
        for name in ("prediction", "indices"):
            np.testing.assert_array_equal(out_changed[name][:, : k - 1], out[name][:, : k - 1])
        if k < T - 1:
            assert not np.allclose(out_changed["prediction"][:, k:], out["prediction"][:, k:])


@pytest.mark.parametrize("k", range(1, T))
def test_decoder_never_sees_the_frame_it_predicts(k):
    """With the actions held fixed, output t (the prediction of x_{t+1}) depends on x_0..x_t
    only: the target frame may reach it solely through the A-code bottleneck ã_t. Changing x_k
    must leave outputs 0..k-1 (the prediction of x_k included) untouched and change outputs
    k.. . A decoder fed x_1..x_{T-1} would copy its targets and leave ã with nothing to learn."""
    run = _run()
    video = _video()
    decoded = run(video)["decoded_with_fixed_actions"]
    decoded_changed = run(video.at[:, k].set(_video(seed=5)[:, k]))["decoded_with_fixed_actions"]
    np.testing.assert_array_equal(decoded_changed[:, :k], decoded[:, :k])
    if k < T - 1:
        assert not np.allclose(decoded_changed[:, k:], decoded[:, k:])


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((B, 1, S, S, C), "2..6 frames"),
        ((B, CONFIG.max_frames + 1, S, S, C), "2..6 frames"),
        ((B, T, S, S), "LAM expects video"),
        ((T, S, S, C), "LAM expects video"),
        ((B, T, S + 8, S + 8, C), "LAM expects video"),
        ((B, T, S, S, 1), "LAM expects video"),
    ],
    ids=["single_frame", "too_many_frames", "no_channels", "no_batch", "frame_size", "channels"],
)
def test_bad_video_shapes_raise(shape, message):
    """A single frame has no transition to infer; other shapes do not match the patching."""
    model, variables = _setup()
    with pytest.raises(ValueError, match=message):
        jax.eval_shape(model.apply, variables, jnp.zeros(shape))
