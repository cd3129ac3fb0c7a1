"""The three-stage pipeline through the real training loop on real CoinRun clips: tokenizer and
LAM runs, then dynamics runs that load them (params only), learn, and can be played."""

import json
import pathlib

import jax
import numpy as np
import optax
import pytest

from genie_jax.cli import main
from genie_jax.config_loading import ConfigError
from genie_jax.train.checkpoint import CheckpointNotFoundError
from genie_jax.train.loop import train
from genie_jax.train.pretrained import PretrainedMismatchError
from tests.conftest import xla_flags
from tests.train.conftest import CONFIG, TINY_TOKENIZER

pytestmark = pytest.mark.long_running(seconds=150)  # see tests/conftest.py

TINY_LAM = {
    "lam.model.patch_size": 16,
    "lam.model.max_frames": 8,
    "lam.model.encoder_layers": 1,
    "lam.model.encoder_dim": 32,
    "lam.model.encoder_heads": 2,
    "lam.model.decoder_layers": 1,
    "lam.model.decoder_dim": 32,
    "lam.model.decoder_heads": 2,
    "lam.model.latent_dim": 8,
    "lam.batch_size": 8,
    "lam.num_steps": 6,
    "lam.dead_code_threshold": 2,
    "lam.optimizer.warmup_steps": 1,
}
TINY_DYNAMICS = {
    "dynamics.model.num_layers": 1,
    "dynamics.model.dim": 32,
    "dynamics.model.num_heads": 2,
    "dynamics.model.max_frames": 8,
    "dynamics.batch_size": 8,
    "dynamics.num_steps": 30,
    "dynamics.optimizer.warmup_steps": 1,
    "dynamics.optimizer.learning_rate": 3e-3,
    "dynamics.sampling.steps": 4,
}


@pytest.fixture(scope="module")
def parts(coinrun_dir, tmp_path_factory):
    """Workdirs of a finished tiny tokenizer run and a finished tiny LAM run."""
    root = tmp_path_factory.mktemp("parts")
    overrides = {"data_dir": coinrun_dir, **TINY_TOKENIZER, **TINY_LAM, **TINY_DYNAMICS}
    from genie_jax.config_loading import load_config

    config = load_config(f"{CONFIG}:smoke", overrides)
    train(config, root / "tokenizer", "tokenizer")
    train(config, root / "lam", "lam")
    return {"tokenizer": root / "tokenizer", "lam": root / "lam", "overrides": overrides}


def _dynamics_config(parts, **extra):
    from genie_jax.config_loading import load_config

    values = {
        **parts["overrides"],
        "tokenizer_workdir": str(parts["tokenizer"]),
        "lam_workdir": str(parts["lam"]),
        "eval_every": 10,
        "checkpoint_every": 30,
        **extra,
    }
    return load_config(f"{CONFIG}:smoke", values)


def _metrics(workdir: pathlib.Path, key: str) -> list[float]:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [row[key] for row in map(json.loads, lines) if key in row]


@pytest.fixture(scope="module")
def dynamics_run(parts, tmp_path_factory):
    """Trained on a (2, 2, 2) mesh: parameters sharded over fsdp and tensor in the checkpoint."""
    workdir = tmp_path_factory.mktemp("dynamics")
    summary = train(_dynamics_config(parts, mesh_shape=(2, 2, 2)), workdir, "dynamics")
    return workdir, summary


def test_dynamics_loss_falls_on_real_clips(dynamics_run):
    workdir, _ = dynamics_run
    train_ce = _metrics(workdir, "train/cross_entropy")
    assert np.mean(train_ce[-5:]) < 0.7 * np.mean(train_ce[:3]), train_ce
    val_ce = _metrics(workdir, "val/cross_entropy")
    assert val_ce[-1] < val_ce[0], val_ce
    assert val_ce[-1] < np.log(64) - 0.5  # clearly better than uniform over the 64 codes


def _checkpoint_params(workdir: pathlib.Path, step: int | None = None):
    import orbax.checkpoint as ocp

    manager = ocp.CheckpointManager(
        workdir / "checkpoints", item_handlers={"state": ocp.PyTreeCheckpointHandler()}
    )
    step = manager.latest_step() if step is None else step
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore()))
    manager.close()
    return restored["state"]


def test_pretrained_parts_are_loaded_frozen_and_without_their_optimizer(parts, dynamics_run):
    workdir, _ = dynamics_run
    dynamics_state = _checkpoint_params(workdir)
    for part in ("tokenizer", "lam"):
        saved = _checkpoint_params(parts[part])["params"]
        loaded = dynamics_state["params"][part]
        same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), saved, loaded)
        assert all(jax.tree.leaves(same)), f"{part} params differ from its own run's checkpoint"
    # Adam moments exist for the dynamics params only: nothing of the parts' optimizers.
    opt_leaves = jax.tree_util.tree_flatten_with_path(dynamics_state["opt_state"])[0]
    paths = [jax.tree_util.keystr(path) for path, _ in opt_leaves]
    assert any("dynamics" in p for p in paths)
    assert not any("'tokenizer'" in p or "'lam'" in p for p in paths), paths[:5]


def test_cotrained_lam_learns_alongside(parts, tmp_path):
    config = _dynamics_config(
        parts, **{"dynamics.cotrain_lam": True, "lam_workdir": "", "dynamics.num_steps": 4}
    )
    summary = train(config, tmp_path / "cotrain", "dynamics")
    assert "lam_mse" in summary["train"] and np.isfinite(summary["train"]["lam_mse"])


def test_tokenizer_with_another_codebook_size_is_refused(parts, tmp_path):
    config = _dynamics_config(parts, **{"tokenizer.model.codebook_size": 128})
    with pytest.raises(PretrainedMismatchError, match="codebook") as error:
        train(config, tmp_path / "run", "dynamics")
    assert "'codebook_size': 64" in str(error.value)  # names what the checkpoint was built with
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_parts_give_clear_errors(parts, tmp_path):
    with pytest.raises(ConfigError, match="lam_workdir is empty"):
        train(_dynamics_config(parts, lam_workdir=""), tmp_path / "a", "dynamics")
    with pytest.raises(ConfigError, match="tokenizer_workdir is empty"):
        train(_dynamics_config(parts, tokenizer_workdir=""), tmp_path / "b", "dynamics")
    with pytest.raises(CheckpointNotFoundError, match="genie train lam"):
        config = _dynamics_config(parts, lam_workdir=str(tmp_path / "nowhere"))
        train(config, tmp_path / "c", "dynamics")


def test_play_scripted_rollout_and_bad_action(dynamics_run, tmp_path, capsys):
    workdir, _ = dynamics_run
    out = tmp_path / "rollout.gif"
    # 10 actions from one prompt frame: past max_frames (8), so the KV-cache window slides.
    main(["play", "--workdir", str(workdir), "--actions", "0,1,2,3,4,5,0,1,2,3", "--out", str(out)])
    assert "rollout (11 frames)" in capsys.readouterr().out
    import imageio.v3 as iio

    frames = iio.imread(out)
    assert frames.shape[0] == 11 and frames.shape[-1] == 3
    with pytest.raises(SystemExit, match=r"latent action\(s\) \[6\] outside 0..5"):
        main(["play", "--workdir", str(workdir), "--actions", "0,6", "--out", str(out)])
    bad_out = tmp_path / "rollout"  # no .gif: refused before anything loads or is written
    with pytest.raises(SystemExit, match="must name a .gif file"):
        main(["play", "--workdir", str(workdir), "--actions", "0", "--out", str(bad_out)])
    assert not bad_out.exists()


def test_optimizer_of_frozen_groups_is_empty():
    from genie_jax.train.state import freeze_groups

    tx = freeze_groups(optax.adam(1e-3), ("frozen_part",))
    params = {"frozen_part": {"w": np.ones(3)}, "trained": {"w": np.ones(3)}}
    state = tx.init(params)
    sizes = [np.size(x) for x in jax.tree.leaves(state)]
    assert sum(sizes) == 2 * 3 + 1  # Adam's mu and nu for "trained" only, plus its step count


def test_eval_of_an_8_device_checkpoint_runs_on_1_device(dynamics_run):
    """`genie eval` in a fresh process that sees a single CPU device."""
    import os
    import subprocess
    import sys

    workdir, _ = dynamics_run
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = xla_flags(1)
    command = [sys.executable, "-m", "genie_jax.cli", "eval", "--workdir", str(workdir)]
    command += ["--num-clips", "8", "--batch-size", "4", "--split", "validation"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert metrics["meta"]["checkpoint_step"] == 30 and metrics["meta"]["num_clips"] == 8
    assert set(metrics) == {"tokenizer", "lam", "dynamics", "latent_to_real", "meta"}
    dynamics = metrics["dynamics"]
    assert len(dynamics["psnr_inferred_by_t"]) == 7 and np.isfinite(dynamics["delta_psnr"])
    assert dynamics["fvd"] is None and "shorter than 16" in dynamics["fvd_warning"]
    assert 0.0 <= dynamics["token_accuracy"] <= 1.0
    assert metrics["latent_to_real"]["labels_used"] == 200
    out = workdir / "eval" / "step_30"
    for name in ("psnr_by_t.png", "codebook_usage.png", "rollouts.gif"):
        assert (out / name).stat().st_size > 0
