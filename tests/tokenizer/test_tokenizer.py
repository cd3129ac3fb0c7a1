"""ST-ViViT VQ-VAE tokenizer (Genie §2.1): shapes, round trips, causality, bad inputs."""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genie_jax.tokenizer import Tokenizer, TokenizerConfig

CONFIG = TokenizerConfig(
    frame_size=16,
    channels=3,
    patch_size=4,
    max_frames=4,
    encoder_layers=1,
    encoder_dim=16,
    encoder_heads=2,
    decoder_layers=1,
    decoder_dim=32,
    decoder_heads=2,
    mlp_ratio=2,
    codebook_size=16,
    latent_dim=8,
)
B, T, S, C = 2, 4, CONFIG.frame_size, CONFIG.channels
N, E, V = CONFIG.num_tokens, CONFIG.latent_dim, CONFIG.codebook_size


def _key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")  # compiles faster than threefry on CPU


def _video(batch: int = B, frames: int = T, seed: int = 0) -> jax.Array:
    return jax.random.uniform(_key(seed), (batch, frames, S, S, C))


@functools.cache
def _setup():
    """(model, variables, jitted encode) built once for the module."""
    model = Tokenizer(CONFIG)
    variables = nn.meta.unbox(jax.jit(model.init)(_key(1), _video()))
    encode = jax.jit(functools.partial(model.apply, method=Tokenizer.encode))
    return model, variables, encode


def test_config_grid_size():
    assert CONFIG.grid_size == 4 and CONFIG.num_tokens == 16
    bad = dataclasses.replace(CONFIG, frame_size=18)
    with pytest.raises(ValueError, match="frame_size 18 is not divisible by patch_size 4"):
        _ = bad.grid_size
    with pytest.raises(ValueError, match="not divisible"):
        _ = bad.num_tokens


def test_encode_shapes_and_indices():
    model, variables, encode = _setup()
    z_BTNE, aux = encode(variables, _video())
    assert z_BTNE.shape == (B, T, N, E) and z_BTNE.dtype == jnp.float32
    assert np.all(np.isfinite(z_BTNE))
    indices = np.asarray(aux["indices"])
    assert indices.shape == (B, T, N)
    assert np.issubdtype(indices.dtype, np.integer)
    assert np.all((indices >= 0) & (indices < V))
    for name in ("loss", "codebook_loss", "commitment_loss", "perplexity", "usage"):
        assert np.shape(aux[name]) == () and np.isfinite(aux[name]), name
    # The quantized latents are the codes the indices name. Two compiled programs may round
    # the codebook's normalization an ulp apart (the suite compiles without LLVM optimization,
    # tests/conftest.py); a wrong code would be off by far more.
    codes = model.apply(variables, aux["indices"], method=lambda m, i: m.quantizer.lookup(i))
    np.testing.assert_allclose(z_BTNE, codes, rtol=0, atol=1e-6)


def test_reconstruction_and_decoders_agree():
    model, variables, encode = _setup()
    video = _video()
    recon, aux = jax.jit(model.apply)(variables, video)
    assert recon.shape == (B, T, S, S, C) and recon.dtype == jnp.float32
    assert np.all(np.isfinite(recon))

    z_BTNE, enc_aux = encode(variables, video)
    np.testing.assert_array_equal(aux["indices"], enc_aux["indices"])
    decode = jax.jit(functools.partial(model.apply, method=Tokenizer.decode))
    decode_indices = jax.jit(functools.partial(model.apply, method=Tokenizer.decode_indices))
    from_latents = decode(variables, z_BTNE)
    from_indices = decode_indices(variables, aux["indices"])
    assert from_indices.shape == (B, T, S, S, C)
    np.testing.assert_allclose(from_indices, from_latents, atol=1e-5)
    np.testing.assert_allclose(recon, from_latents, atol=1e-5)
    # Different codes decode to different frames (the decoder reads its input).
    shifted = decode_indices(variables, (aux["indices"] + 1) % V)
    assert not np.allclose(shifted, from_indices, atol=1e-3)


def test_train_mode_updates_code_counters():
    model, variables, _ = _setup()
    before = np.arange(V, dtype=np.int32)
    variables = {**variables, "vq_stats": {"quantizer": {"steps_unused": jnp.asarray(before)}}}
    apply = jax.jit(functools.partial(model.apply, train=True, mutable=["vq_stats"]))
    (_, aux), state = apply(variables, _video())
    after = np.asarray(state["vq_stats"]["quantizer"]["steps_unused"])
    used = np.asarray(aux["counts"]) > 0
    assert used.any()
    np.testing.assert_array_equal(after, np.where(used, 0, before + 1))
    # Evaluation leaves the counters alone.
    _, state = jax.jit(functools.partial(model.apply, mutable=["vq_stats"]))(variables, _video())
    np.testing.assert_array_equal(state["vq_stats"]["quantizer"]["steps_unused"], before)


def test_reconstruction_is_causal_in_time():
    """d recon[:, t] / d video[:, t'] == 0 for t' > t; nonzero for t' <= t."""
    model, variables, _ = _setup()
    video = _video(batch=1)

    def grads_per_frame(video):
        recon, vjp = jax.vjp(lambda v: model.apply(variables, v)[0], video)
        w = jax.random.normal(_key(9), recon.shape)
        frame_mask_T = jnp.eye(T)[:, None, :, None, None, None]  # [T(cotangent), B, T, ...]
        (grad_T,) = jax.vmap(vjp)(w[None] * frame_mask_T)
        return grad_T  # [T (output frame), B, T (input frame), H, W, C]

    grad = np.asarray(jax.jit(grads_per_frame)(video))
    influence = np.abs(grad).sum(axis=(1, 3, 4, 5))  # [T out, T in]
    for t in range(T):
        assert np.all(influence[t, t + 1 :] == 0.0), f"frame {t} depends on later frames"
        assert np.all(influence[t, : t + 1] > 0.0), f"frame {t} ignores frames <= {t}"


def test_bfloat16_config_keeps_fp32_params_and_outputs():
    model = Tokenizer(dataclasses.replace(CONFIG, dtype="bfloat16"))
    variables = jax.eval_shape(model.init, _key(1), _video())
    params = nn.meta.unbox(variables["params"])
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    recon, aux = jax.eval_shape(model.apply, nn.meta.unbox(variables), _video())
    assert recon.dtype == jnp.float32 and aux["loss"].dtype == jnp.float32


@pytest.mark.parametrize(
    "shape, match",
    [
        ((B, T, 12, 12, C), r"\[B, T, 16, 16, 3\], got \(2, 4, 12, 12, 3\)"),
        ((B, T, S, S, 1), r"\[B, T, 16, 16, 3\], got \(2, 4, 16, 16, 1\)"),
        ((T, S, S, C), r"\[B, T, 16, 16, 3\], got \(4, 16, 16, 3\)"),
        ((B, T + 1, S, S, C), "needs 1..4 frames per clip, got 5"),
    ],
    ids=["frame_size", "channels", "rank", "too_many_frames"],
)
def test_bad_video_raises(shape, match):
    model, variables, _ = _setup()
    with pytest.raises(ValueError, match=match):
        model.apply(variables, jnp.zeros(shape))
    with pytest.raises(ValueError, match=match):
        model.apply(variables, jnp.zeros(shape), method=Tokenizer.encode)
