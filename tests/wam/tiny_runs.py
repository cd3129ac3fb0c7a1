"""The tiny real-data runs the WAM pipeline tests share: 40 GoToLocal episodes in windows of
CLIP frames, a 4-step tokenizer and a 4-step WAM at 50% labels on a (2, 2, 2) mesh."""

import pathlib

from genie_jax.config_loading import load_config
from genie_jax.train.loop import train
from wam_jax.data import build_babyai
from wam_jax.task import train_wam

CONFIG = str(pathlib.Path(__file__).resolve().parents[2] / "experiments/configs/babyai.py")
CLIP = 6
TINY = {
    "clip_len": CLIP,
    "tokenizer.model.patch_size": 16,
    "tokenizer.model.max_frames": CLIP,
    "tokenizer.model.encoder_layers": 1,
    "tokenizer.model.encoder_dim": 32,
    "tokenizer.model.encoder_heads": 2,
    "tokenizer.model.decoder_layers": 1,
    "tokenizer.model.decoder_dim": 32,
    "tokenizer.model.decoder_heads": 2,
    "tokenizer.model.codebook_size": 32,
    "tokenizer.model.latent_dim": 8,
    "tokenizer.num_steps": 4,
    "wam.model.num_layers": 1,
    "wam.model.dim": 32,
    "wam.model.num_heads": 2,
    "wam.model.max_frames": CLIP,
    "wam.num_steps": 4,
    "wam.batch_size": 4,
    "tokenizer.batch_size": 4,
    "wam.optimizer.warmup_steps": 1,
    "log_every": 2,
    "eval_every": 4,
    "eval_batches": 1,
    "checkpoint_every": 4,
}


def tiny_run_config(data_dir, **overrides):
    """The smoke preset at the TINY sizes on `data_dir`, with `overrides` on top."""
    return load_config(f"{CONFIG}:smoke", {"data_dir": data_dir, **TINY, **overrides})


def build_tiny_data(out: pathlib.Path) -> str:
    build_babyai(out, "BabyAI-GoToLocal-v0", episodes=40, clip_len=CLIP)
    return str(out)


def train_tiny_runs(data_dir: str, root: pathlib.Path) -> tuple[pathlib.Path, dict]:
    """`root/tok` (tokenizer) and `root/wam` (joint WAM at 50% labels); returns the WAM's
    training summary too."""
    train(tiny_run_config(data_dir, mesh_shape=(2, 2, 2)), root / "tok", "tokenizer")
    config = tiny_run_config(
        data_dir,
        tokenizer_workdir=str(root / "tok"),
        mesh_shape=(2, 2, 2),
        **{"wam.label_fraction": 0.5},
    )
    return root, train_wam(config, root / "wam")
