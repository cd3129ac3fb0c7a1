"""ΔtPSNR (Genie §3): how much the latent actions control the generated video.

    ΔtPSNR = PSNR(x_t, x̂_t) - PSNR(x_t, x̂'_t)

x̂_t is generated autoregressively from the prompt with the latent actions the LAM infers from
the real clip; x̂'_t the same way with latent actions drawn uniformly at random at every step.
Both rollouts use the same sampling rng. Pixels in [0, 1].

The paper leaves three choices open; ours, fixed here and in the README:
- prompt: one frame, x_0 (the rollout generates x_1..x_{T-1});
- index: t counts frames from the prompt, x_t is frame index t of the clip (0-based), so t=4
  is the fourth generated frame; the headline is t=4, and PSNR(t) is reported for t=1..T-1;
- averaging: PSNR per clip and frame (10 log10(1 / MSE over that frame's pixels)), then the
  mean over clips; ΔtPSNR is the difference of those means.
"""

from typing import Protocol

import jax
import numpy as np

HEADLINE_T = 4


class ControllableWorld(Protocol):
    """What ΔtPSNR needs of a world model (`genie_jax.world.World` is one)."""

    @property
    def num_actions(self) -> int: ...

    def latent_actions(self, video_BTHWC: np.ndarray) -> np.ndarray:
        """Real clips [B, T, H, W, C] -> latent actions [B, T-1]."""
        ...

    def rollout_video(
        self, prompt_BPHWC: np.ndarray, actions_BA: np.ndarray, rng: jax.Array, num_frames: int
    ) -> np.ndarray:
        """Prompt frames + one action per transition -> uint8 video [B, num_frames, H, W, C]."""
        ...


def _unit(video: np.ndarray) -> np.ndarray:
    video = np.asarray(video)
    if video.dtype == np.uint8:
        return video.astype(np.float64) / 255.0
    return np.clip(video.astype(np.float64), 0.0, 1.0)


def psnr_per_frame(real_BTHWC: np.ndarray, generated_BTHWC: np.ndarray) -> np.ndarray:
    """PSNR in dB of every frame of every clip, [B, T] (identical frames give 100 dB)."""
    real, generated = _unit(real_BTHWC), _unit(generated_BTHWC)
    if real.shape != generated.shape:
        raise ValueError(f"shape mismatch: real {real.shape} vs generated {generated.shape}")
    mse_BT = np.mean((real - generated) ** 2, axis=(2, 3, 4))
    return np.where(mse_BT > 0, -10.0 * np.log10(np.maximum(mse_BT, 1e-10)), 100.0)


def controllability_psnr(
    world: ControllableWorld,
    video_BTHWC: np.ndarray,
    rng: jax.Array,
    *,
    random_codes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Both rollouts of a batch and their per-clip PSNR.

    Returns `psnr_inferred` and `psnr_random` [B, T] (frame 0, the prompt, included for
    completeness; the metric uses t >= 1) and the rollouts `inferred_video`, `random_video`.
    `random_codes` restricts the random actions to these codes (default: all A of them); a LAM
    that uses few codes leaves the others untrained in the dynamics model, and random actions
    among them measure that damage rather than control.
    """
    video_BTHWC = np.asarray(video_BTHWC)
    batch, frames = video_BTHWC.shape[:2]
    action_rng, sample_rng = jax.random.split(rng)
    inferred_BA = np.asarray(world.latent_actions(video_BTHWC))
    codes = np.arange(world.num_actions) if random_codes is None else np.asarray(random_codes)
    if codes.size == 0 or codes.min() < 0 or codes.max() >= world.num_actions:
        raise ValueError(f"random_codes {codes.tolist()} must be a non-empty subset of 0..A-1")
    picks_BA = jax.random.randint(action_rng, (batch, frames - 1), 0, codes.size)
    random_BA = codes[np.asarray(picks_BA)].astype(np.int32)
    prompt = video_BTHWC[:, :1]
    with_inferred = world.rollout_video(prompt, inferred_BA, sample_rng, frames)
    with_random = world.rollout_video(prompt, random_BA, sample_rng, frames)
    return {
        "psnr_inferred": psnr_per_frame(video_BTHWC, with_inferred),
        "psnr_random": psnr_per_frame(video_BTHWC, with_random),
        "inferred_video": np.asarray(with_inferred),
        "random_video": np.asarray(with_random),
    }


def summarize_controllability(
    psnr_inferred_BT: np.ndarray, psnr_random_BT: np.ndarray, *, t: int = HEADLINE_T
) -> dict:
    """Means over clips: `delta_psnr` at t, and PSNR(t) curves for t = 1..T-1."""
    inferred_T = np.mean(psnr_inferred_BT, axis=0)
    random_T = np.mean(psnr_random_BT, axis=0)
    frames = inferred_T.shape[0]
    if not 1 <= t < frames:
        raise ValueError(f"ΔtPSNR at t={t} needs clips of more than {t} frames, got {frames}")
    return {
        "delta_psnr": float(inferred_T[t] - random_T[t]),
        "delta_psnr_t": t,
        "psnr_inferred_by_t": inferred_T[1:].tolist(),
        "psnr_random_by_t": random_T[1:].tolist(),
        "num_clips": int(psnr_inferred_BT.shape[0]),
    }
