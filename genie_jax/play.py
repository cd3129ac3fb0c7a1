"""`genie play`: a person picks the latent action, Genie draws the next frame.

A `PlaySession` starts from one prompt frame, keeps the dynamics model's KV cache, and decodes
one frame per chosen action. Past `max_frames` it slides its window: the newest max_frames - 1
frames become the prompt again (the model only knows max_frames positions).

The terminal loop renders every new frame to an image file (and a GIF of the session so far)
so it works without a display; where a display and tkinter exist it also shows a window.
"""

import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.dynamics import frame_actions
from genie_jax.maskgit import check_actions
from genie_jax.video_io import upscale, write_gif, write_image, write_mp4
from genie_jax.world import World

SCALE = 4  # on-screen upscaling of the 64x64 frames


class PlaySession:
    def __init__(self, world: World, prompt_frame_HWC: np.ndarray, *, seed: int = 0):
        self.world = world
        self.capacity = world.max_frames
        self.rng = jax.random.key(seed)
        self.num_steps = 0
        first_N = np.asarray(world.tokenize(prompt_frame_HWC[None, None]))[0, 0]
        self.tokens: list[np.ndarray] = [first_N]  # every frame of the session, [N] each
        self.actions: list[int] = []  # transition actions, one per generated frame
        self.frames: list[np.ndarray] = [self._decode_last()]
        self._start(0)

    def _start(self, first: int) -> None:
        """(Re)fills the KV cache with the session's frames from index `first` on."""
        window_BTN = jnp.asarray(np.stack(self.tokens[first:])[None])
        window_actions = np.asarray(self.actions[first:], np.int32)[None]
        self.window_start = first
        self.state = self.world.sampler.start(
            self.world.dynamics_params,
            window_BTN,
            frame_actions(jnp.asarray(window_actions), self.world.num_actions),
            capacity=self.capacity,
        )

    def _decode_last(self) -> np.ndarray:
        # A fixed-length buffer keeps one compiled decoder: the decoder is causal, so the
        # padding after the last frame does not change it.
        window = self.tokens[-self.capacity :]
        buffer_TN = np.zeros((self.capacity, window[0].shape[0]), np.int32)
        buffer_TN[: len(window)] = np.stack(window)
        video = self.world.detokenize(buffer_TN[None])
        return video[0, len(window) - 1]

    def step(self, action: int) -> np.ndarray:
        """Generates the frame that `action` leads to; returns it (uint8 [H, W, C])."""
        action = int(check_actions(np.array([action]), self.world.num_actions)[0])
        if self.state.next_frame >= self.capacity:
            self._start(len(self.tokens) - (self.capacity - 1))
        rng = jax.random.fold_in(self.rng, self.num_steps)
        frame_BN, self.state = self.world.sampler.step(
            self.world.dynamics_params, self.state, np.array([action], np.int32), rng
        )
        self.num_steps += 1
        self.actions.append(action)
        self.tokens.append(np.asarray(frame_BN[0]))
        self.frames.append(self._decode_last())
        return self.frames[-1]

    def video(self) -> np.ndarray:
        """Every frame so far, [T, H, W, C] uint8."""
        return np.stack(self.frames)


def parse_actions(text: str, num_actions: int) -> list[int]:
    """'0,3,3,1' (or spaces) -> [0, 3, 3, 1], checked against 0..A-1."""
    items = [item for item in text.replace(",", " ").split() if item]
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise ValueError(
            f"actions must be integers in 0..{num_actions - 1}, got {text!r}"
        ) from None
    return check_actions(np.array(values, np.int64), num_actions).tolist()


def save_rollout(session: PlaySession, out: pathlib.Path) -> list[pathlib.Path]:
    """GIF (and MP4 when an encoder exists) of the session, upscaled."""
    video = upscale(session.video(), SCALE)
    written = [write_gif(out, video)]
    mp4 = write_mp4(out.with_suffix(".mp4"), video)
    if mp4 is not None:
        written.append(mp4)
    return written


class _Window:
    """A tkinter window showing the latest frame, when a display exists; otherwise inert."""

    def __init__(self):
        self._root = self._label = None
        if not (os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32")):
            return
        try:
            import tkinter

            self._root = tkinter.Tk()
            self._root.title("genie play")
            self._label = tkinter.Label(self._root)
            self._label.pack()
        except Exception:  # no Tk, or no usable display
            self._root = None

    def show(self, frame_HWC: np.ndarray) -> None:
        if self._root is None:
            return
        from PIL import Image, ImageTk

        photo = ImageTk.PhotoImage(Image.fromarray(upscale(frame_HWC, SCALE)))
        self._label.configure(image=photo)
        self._label.image = photo
        self._root.update()


def interactive(session: PlaySession, frame_file: pathlib.Path, gif_file: pathlib.Path) -> None:
    """Reads actions from stdin until 'q' or end of input."""
    window = _Window()
    num_actions = session.world.num_actions

    def render():
        write_image(frame_file, upscale(session.frames[-1], SCALE))
        write_gif(gif_file, upscale(session.video(), SCALE))
        window.show(session.frames[-1])

    render()
    print(
        f"latent actions 0..{num_actions - 1}: type one or several (e.g. '2' or '0 3 3') and "
        f"press Enter; 'q' quits.\nframe: {frame_file}   session GIF: {gif_file}"
    )
    for line in sys.stdin:
        line = line.strip()
        if line in ("q", "quit", "exit"):
            break
        if not line:
            continue
        try:
            actions = parse_actions(line, num_actions)
        except ValueError as error:
            print(f"  {error}")
            continue
        for action in actions:
            session.step(action)
        render()
        print(f"  frame {len(session.frames) - 1} (actions so far: {session.actions})")
