"""MaskGIT's cosine schedule: how many tokens stay masked after each decoding step."""

import math

import numpy as np


def cosine_mask_ratio(progress: float) -> float:
    """Fraction of tokens still masked at progress r in [0, 1]: cos(pi/2 * r)."""
    return math.cos(math.pi / 2.0 * progress)


def masked_after_step(num_tokens: int, steps: int) -> np.ndarray:
    """[steps] ints: tokens still masked after step s (0-based) of decoding a fully masked frame.

    floor(N * cos(pi/2 * (s+1)/steps)): non-increasing and 0 after the last step, so every
    token is fixed by the end.
    """
    if steps < 1:
        raise ValueError(f"MaskGIT needs at least one step, got {steps}")
    ratios = np.array([cosine_mask_ratio((s + 1) / steps) for s in range(steps)])
    counts = np.floor(num_tokens * ratios + 1e-9).astype(np.int32)
    counts[-1] = 0  # cos(pi/2) is 6e-17, not 0
    return counts
