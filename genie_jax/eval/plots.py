"""Evaluation figures: PSNR(t) curves and codebook usage histograms (matplotlib, no display)."""

import pathlib

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_psnr_by_t(path: pathlib.Path, inferred_T: list, random_T: list, *, t: int) -> None:
    plt = _pyplot()
    steps = np.arange(1, len(inferred_T) + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, inferred_T, marker="o", label="inferred latent actions")
    ax.plot(steps, random_T, marker="s", label="random latent actions")
    ax.axvline(t, color="grey", linestyle=":", label=f"ΔtPSNR at t={t}")
    ax.set_xlabel("t (frames after the prompt)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("PSNR(t) of autoregressive rollouts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_codebook_usage(path: pathlib.Path, token_counts: np.ndarray, action_counts: np.ndarray):
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sorted_counts = np.sort(token_counts)[::-1]
    left.bar(np.arange(sorted_counts.size), sorted_counts, width=1.0)
    left.set_yscale("log")
    used = int(np.sum(token_counts > 0))
    left.set_title(f"tokenizer codes, sorted ({used}/{token_counts.size} used)")
    left.set_xlabel("code rank")
    left.set_ylabel("count")
    right.bar(np.arange(action_counts.size), action_counts)
    right.set_title(f"latent actions ({int(np.sum(action_counts > 0))}/{action_counts.size} used)")
    right.set_xlabel("latent action")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
