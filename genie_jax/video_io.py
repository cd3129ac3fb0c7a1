"""Writing frames to image, GIF and MP4 files (for play, the demo and evaluation)."""

import pathlib

import imageio.v3 as iio
import numpy as np


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of [..., H, W, C] frames (64x64 CoinRun is tiny on screen)."""
    if factor <= 1:
        return frames
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def side_by_side(*videos_THWC: np.ndarray, gap: int = 2) -> np.ndarray:
    """Videos of equal length and height next to each other, separated by white columns."""
    length, height = videos_THWC[0].shape[:2]
    spacer = np.full((length, height, gap, 3), 255, np.uint8)
    parts = []
    for video in videos_THWC:
        parts += [video, spacer]
    return np.concatenate(parts[:-1], axis=2)


def write_image(path: str | pathlib.Path, frame_HWC: np.ndarray) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frame_HWC)
    return path


def write_gif(path: str | pathlib.Path, frames_THWC: np.ndarray, *, fps: int = 10) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.asarray(frames_THWC, np.uint8), duration=1000 / fps, loop=0)
    return path


def write_mp4(
    path: str | pathlib.Path, frames_THWC: np.ndarray, *, fps: int = 10
) -> pathlib.Path | None:
    """Writes an MP4 when an encoder (pyav or imageio-ffmpeg) is installed; None otherwise."""
    path = pathlib.Path(path)
    frames = np.asarray(frames_THWC, np.uint8)
    # H.264 wants even sides.
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    for plugin in ("pyav", "FFMPEG"):
        try:
            iio.imwrite(path, frames, fps=fps, plugin=plugin)
            return path
        except Exception:  # plugin missing or unable to encode: try the next, then give up
            path.unlink(missing_ok=True)
    return None


def read_image(path: str | pathlib.Path, size: int) -> np.ndarray:
    """An image file -> uint8 RGB [size, size, 3] (resized if needed)."""
    from PIL import Image

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image, np.uint8)
