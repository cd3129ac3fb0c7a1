"""Frames <-> patch tokens (Genie §2.1: the tokenizer and LAM work on p x p patches)."""

import einops
import jax


def patchify(video_BTHWC: jax.Array, patch_size: int) -> jax.Array:
    """[B, T, H*p, W*p, C] -> [B, T, N, P] with N = H*W and P = p*p*C."""
    *_, height, width, _ = video_BTHWC.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"frame size {height}x{width} is not divisible by patch size {patch_size}")
    return einops.rearrange(
        video_BTHWC, "b t (h p1) (w p2) c -> b t (h w) (p1 p2 c)", p1=patch_size, p2=patch_size
    )


def unpatchify(patches_BTNP: jax.Array, patch_size: int, grid_h: int, grid_w: int) -> jax.Array:
    """[B, T, N, P] -> [B, T, H*p, W*p, C]; the inverse of `patchify`."""
    return einops.rearrange(
        patches_BTNP,
        "b t (h w) (p1 p2 c) -> b t (h p1) (w p2) c",
        h=grid_h,
        w=grid_w,
        p1=patch_size,
        p2=patch_size,
    )


def check_video(video_BTHWC: jax.Array, config, who: str, *, min_frames: int = 1) -> None:
    """Raises a ValueError naming `who` unless the video is [B, T, S, S, C] with
    min_frames <= T <= max_frames of `config` (which has frame_size, channels, max_frames)."""
    size, channels = config.frame_size, config.channels
    if video_BTHWC.ndim != 5 or video_BTHWC.shape[2:] != (size, size, channels):
        raise ValueError(
            f"{who} expects video [B, T, {size}, {size}, {channels}], got {video_BTHWC.shape}"
        )
    if not min_frames <= video_BTHWC.shape[1] <= config.max_frames:
        raise ValueError(
            f"{who} needs {min_frames}..{config.max_frames} frames per clip, "
            f"got {video_BTHWC.shape[1]}"
        )
