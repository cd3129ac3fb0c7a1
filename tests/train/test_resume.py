"""Checkpoints: kill-and-resume == uninterrupted, restore onto another mesh, divergence, errors."""

import json

import jax
import numpy as np
import pytest

from genie_jax.train.checkpoint import (
    Checkpointer,
    CheckpointMismatchError,
    CheckpointNotFoundError,
)
from genie_jax.train.loop import TrainingDivergedError, train
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES
from genie_jax.train.state import abstract_train_state, make_optimizer
from genie_jax.train.tasks import tokenizer_task


def _restore(config, workdir, mesh_shape, step=None):
    task = tokenizer_task(config)
    mesh = make_mesh(mesh_shape, jax.devices()[: int(np.prod(mesh_shape))])
    tx = make_optimizer(total_steps=task.section.num_steps, **task.section.optimizer.to_dict())
    abstract, _ = abstract_train_state(
        task.model, tx, task.example_inputs, mesh, LOGICAL_AXIS_RULES
    )
    checkpointer = Checkpointer(workdir / "checkpoints")
    try:
        return checkpointer.restore(abstract, step=step)
    finally:
        checkpointer.close()


def _max_difference(tree_a, tree_b) -> float:
    tree_a, tree_b = jax.device_get(tree_a), jax.device_get(tree_b)
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), tree_a, tree_b)
    return max(jax.tree.leaves(diffs))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, coinrun_dir):
    from genie_jax.config_loading import load_config
    from tests.train.conftest import CONFIG, TINY_TOKENIZER

    config = load_config(f"{CONFIG}:smoke", {"data_dir": coinrun_dir, **TINY_TOKENIZER})
    workdir = tmp_path_factory.mktemp("uninterrupted")
    summary = train(config, workdir, "tokenizer")
    return config, workdir, summary


def test_kill_and_resume_matches_uninterrupted(uninterrupted, tiny_config, tmp_path):
    config, straight_dir, summary = uninterrupted
    assert summary["step"] == 6
    # Preempted at step 2 (between checkpoints at 3 and 6), then the same command again.
    first = train(tiny_config(), tmp_path, "tokenizer", stop_at_step=2)
    assert first["step"] == 2
    second = train(tiny_config(), tmp_path, "tokenizer")
    assert second["step"] == 6
    straight = _restore(config, straight_dir, (8, 1, 1))
    resumed = _restore(config, tmp_path, (8, 1, 1))
    assert int(resumed.step) == 6
    assert _max_difference(straight.params, resumed.params) == 0.0
    assert _max_difference(straight.opt_state, resumed.opt_state) == 0.0

    # Logged losses of the overlapping steps agree too (data order was restored).
    def losses(workdir):
        rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}

    straight_losses, resumed_losses = losses(straight_dir), losses(tmp_path)
    assert set(straight_losses) == set(range(1, 7))
    for step in range(3, 7):
        assert resumed_losses[step] == pytest.approx(straight_losses[step], abs=1e-6)


def test_loss_falls_and_files_are_written(uninterrupted):
    _, workdir, summary = uninterrupted
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses[-1] < losses[0]
    assert any("val/psnr" in r for r in rows)
    assert json.loads((workdir / "config.json").read_text())["tokenizer"]["num_steps"] == 6
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert summary["eval"]["psnr"] > 0


def test_rerun_of_finished_run_resumes_and_does_no_steps(uninterrupted):
    config, workdir, _ = uninterrupted
    lines_before = (workdir / "metrics.jsonl").read_text()
    summary = train(config, workdir, "tokenizer")
    assert summary["step"] == 6
    assert (workdir / "metrics.jsonl").read_text() == lines_before


def test_restore_onto_a_different_mesh(uninterrupted):
    config, workdir, _ = uninterrupted
    on_data = _restore(config, workdir, (8, 1, 1))
    on_fsdp_tensor = _restore(config, workdir, (2, 2, 2))
    kernel = on_fsdp_tensor.params["encoder"]["block_0"]["mlp"]["up"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert _max_difference(on_data.params, on_fsdp_tensor.params) == 0.0
    on_one = _restore(config, workdir, (1, 1, 1))
    assert _max_difference(on_data.params, on_one.params) == 0.0


def test_missing_checkpoint_is_named(uninterrupted, tmp_path):
    config, workdir, _ = uninterrupted
    with pytest.raises(
        CheckpointNotFoundError, match=r"no checkpoint for step 4 .*available steps: \[3, 6\]"
    ):
        _restore(config, workdir, (8, 1, 1), step=4)
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint in"):
        _restore(config, tmp_path, (8, 1, 1))


def test_divergence_stops_or_is_skipped_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    # Good for 3 steps (checkpoint at 3), then a learning rate that blows the weights up.
    train(tiny_config(), tmp_path, "tokenizer", stop_at_step=3)
    blown = tiny_config(**{"tokenizer.optimizer.learning_rate": 1e30})
    with pytest.raises(TrainingDivergedError, match=r"at step \d+.*Last good checkpoint: step 3"):
        train(blown, tmp_path, "tokenizer")
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    assert checkpointer.all_steps() == [3]
    checkpointer.close()
    # `skip_nonfinite_updates`: the same run goes on to the end instead, counting what it
    # skipped (the count is logged as a running total).
    skipping = tiny_config(
        **{"tokenizer.optimizer.learning_rate": 1e30, "skip_nonfinite_updates": True}
    )
    summary = train(skipping, tmp_path, "tokenizer")
    assert summary["step"] == 6 and summary["skipped_updates"] >= 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    counts = [r["train/skipped_updates"] for r in rows if "train/skipped_updates" in r]
    assert counts == sorted(counts) and counts[-1] == summary["skipped_updates"]
    assert Checkpointer(tmp_path / "checkpoints").all_steps() == [3, 6]


def test_restore_into_another_model_names_the_first_parameter(uninterrupted, tiny_config):
    """A config whose model differs from the run's checkpoint: one line naming the parameter
    and both shapes, and the run's files are left as they were."""
    _, workdir, _ = uninterrupted
    saved_config = (workdir / "config.json").read_text()
    changed = tiny_config(**{"tokenizer.model.codebook_size": 32})
    with pytest.raises(CheckpointMismatchError) as error:
        train(changed, workdir, "tokenizer")
    message = str(error.value)
    assert "\n" not in message and "step 6" in message
    assert "codebook" in message and "checkpoint (64, 8), this config (32, 8)" in message
    assert (workdir / "config.json").read_text() == saved_config
    assert Checkpointer(workdir / "checkpoints").all_steps() == [3, 6]
