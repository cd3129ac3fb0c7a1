"""The training loop shared by every model: data, sharded state, steps, logs, checkpoints.

Resumable: re-running the same command restores the newest checkpoint (state and data
position). SIGTERM saves a checkpoint and exits cleanly. A NaN/Inf loss stops the run with
`TrainingDivergedError` and never overwrites the last good checkpoint; with
`config.skip_nonfinite_updates` the step keeps the previous state instead and the run goes on,
counting the skipped updates (`train/skipped_updates`, and `skipped_updates` in the summary).
The workdir may be a local directory or an object-store URI (`gs://bucket/run`); the metrics
are flushed to it at every eval and checkpoint, and when the run ends or fails.
"""

import contextlib
import json
import os
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from clu import parameter_overview
from etils import epath

from genie_jax.config_loading import ConfigError
from genie_jax.data import DataError
from genie_jax.data.coinrun_builder import DATASET_NAME
from genie_jax.data.pipeline import make_eval_iterator, make_train_iterator, to_global_batch
from genie_jax.train.checkpoint import Checkpointer, step_dirs
from genie_jax.train.logging import Progress, create_writer
from genie_jax.train.mesh import make_mesh
from genie_jax.train.pretrained import load_pretrained_params
from genie_jax.train.sharding import batch_sharding, rules_from_config
from genie_jax.train.state import (
    abstract_train_state,
    create_train_state,
    freeze_groups,
    make_optimizer,
)
from genie_jax.train.steps import jit_eval_step, jit_train_step
from genie_jax.train.tasks import TASKS, Task
from genie_jax.train.workdir import workdir_path


class TrainingDivergedError(RuntimeError):
    pass


class _StopRequest:
    """Set by SIGTERM (preemption); the loop saves and exits at the next step boundary."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling there
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def write_config(config: ml_collections.ConfigDict, workdir: epath.Path) -> None:
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")


def _fetch(metrics: dict[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def _check_finite(step: int, scalars: dict[str, float], last_saved: int | None) -> None:
    loss = scalars["loss"]
    if not np.isfinite(loss):
        kept = f"step {last_saved}" if last_saved is not None else "none saved yet"
        raise TrainingDivergedError(
            f"loss became {loss} at step {step}; stopping. Last good checkpoint: {kept}"
        )


def train(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    task_name: str | Task,
    *,
    stop_at_step: int | None = None,
) -> dict[str, Any]:
    """Trains `task_name` ("tokenizer", ...) to `config.<task>.num_steps`, resuming if possible.

    A `Task` object may stand in for the name: packages built on genie_jax (the WAM) train
    their own models through this loop.

    `stop_at_step` simulates a preemption at that step (save and return), for tests and
    for splitting a run into pieces. Returns a summary: final step, last logged metrics,
    last eval metrics, steps/s, and where things were written.
    """
    workdir = workdir_path(workdir)
    task: Task = TASKS[task_name](config) if isinstance(task_name, str) else task_name
    section = task.section
    if not config.data_dir:
        raise DataError("config.data_dir is empty; pass --config.data_dir=DIR")
    mesh = make_mesh(config.mesh_shape)
    rules = rules_from_config(config.get("logical_axis_rules"))
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    if section.batch_size % data_parallel:
        raise ConfigError(
            f"batch_size {section.batch_size} is not divisible by the data-parallel mesh size "
            f"{data_parallel} (mesh {dict(mesh.shape)})"
        )
    train_iter = make_train_iterator(
        config.data_dir,
        "train",
        global_batch_size=section.batch_size,
        clip_len=config.clip_len,
        frame_size=config.frame_size,
        seed=config.seed,
        worker_count=config.data_workers,
        dataset=config.get("dataset", DATASET_NAME),
        operations=task.train_operations,
        source_view=task.train_source_view,
    )
    tx = make_optimizer(total_steps=section.num_steps, **section.optimizer.to_dict())
    tx = freeze_groups(tx, task.frozen)
    if task.pretrained and not _has_checkpoint(workdir / "checkpoints"):
        # Fail on a missing or mismatched part before anything is written.
        abstract, _ = abstract_train_state(task.model, tx, task.example_inputs, mesh, rules)
        for group, source in task.pretrained.items():
            workdir_of, inner, fresh, step = _pretrained_source(source)
            load_pretrained_params(
                workdir_of,
                group,
                abstract.params[group],
                check_only=True,
                step=step,
                group=inner,
                fresh=fresh,
            )
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=config.max_to_keep)
    if checkpointer.latest_step() is not None:
        abstract, shardings = abstract_train_state(task.model, tx, task.example_inputs, mesh, rules)
        state = checkpointer.restore(abstract, train_iter)
        print(f"resumed {task.name} from step {int(state.step)} in {checkpointer.directory}")
    else:
        state, shardings = create_train_state(
            task.model, tx, task.example_inputs, jax.random.key(config.seed), mesh, rules
        )
        state = _load_pretrained(state, task.pretrained)
        if jax.process_index() == 0:
            print(parameter_overview.get_parameter_overview(state.params, include_stats=False))
    # Only once the state is built: a config that does not fit the run's checkpoint must not
    # overwrite the run's own config.json.
    write_config(config, workdir)
    skip_nonfinite = bool(config.get("skip_nonfinite_updates", False))
    train_step = jit_train_step(
        task.train_step, mesh, shardings, rules, skip_nonfinite=skip_nonfinite
    )
    eval_step = jit_eval_step(task.eval_step, mesh, shardings, rules)
    in_sharding = batch_sharding(mesh)
    rng = jax.random.key(config.seed + 1)

    writer = create_writer(workdir)
    start_step = int(state.step)
    progress = Progress(section.num_steps, start_step, task.name)
    last_saved = checkpointer.latest_step()
    summary: dict[str, Any] = {"workdir": str(workdir), "task": task.name}
    pending: tuple[int, dict] | None = None  # metrics fetched one step late, so steps overlap
    warm: tuple[int, float] | None = None  # (step, time) once compilation is behind us

    skipped_total = None  # on the device: summed without waiting for each step

    def flush_pending():
        nonlocal pending
        if pending is None:
            return
        step, metrics = pending
        scalars = _fetch(metrics)
        if skip_nonfinite:
            summary["skipped_updates"] = int(scalars["skipped_updates"])
        else:
            _check_finite(step, scalars, last_saved)
        writer.write_scalars(step, {f"train/{k}": v for k, v in scalars.items()})
        summary["train"] = scalars
        progress.update(0, loss=scalars["loss"])
        pending = None

    def save(step: int, metrics: dict) -> None:
        nonlocal last_saved
        if not skip_nonfinite:  # skipped updates never reach the state
            _check_finite(step, _fetch({"loss": metrics["loss"]}), last_saved)
        checkpointer.save(state, train_iter)
        last_saved = step
        writer.flush()

    # closing: the writer also flushes when the run fails (a diverged loss), which matters where
    # rows reach an object store only on a flush.
    with _StopRequest() as stop, contextlib.closing(writer):
        step = start_step
        metrics = None
        while step < section.num_steps:
            batch = to_global_batch(next(train_iter), in_sharding)
            state, metrics = train_step(state, batch, rng)
            if skip_nonfinite:
                skipped = metrics["skipped_update"]
                skipped_total = skipped if skipped_total is None else skipped_total + skipped
            flush_pending()
            step += 1
            progress.update(1)
            if step % config.log_every == 0 or step == section.num_steps:
                pending = (step, metrics)
                if skip_nonfinite:  # the count up to this step, over every step, logged or not
                    pending = (step, {**metrics, "skipped_updates": skipped_total})
            if step % config.eval_every == 0 or step == section.num_steps:
                flush_pending()
                summary["eval"] = evaluate(
                    config, section, eval_step, state, in_sharding, task.eval_operations
                )
                writer.write_scalars(step, {f"val/{k}": v for k, v in summary["eval"].items()})
                writer.flush()
            if step % config.checkpoint_every == 0 or step == section.num_steps:
                save(step, metrics)
            interrupted = stop.requested or (stop_at_step is not None and step >= stop_at_step)
            if interrupted:
                if last_saved != step:
                    save(step, metrics)
                print(f"stopping at step {step}: checkpoint saved in {checkpointer.directory}")
                break
            if step == start_step + 2:
                jax.block_until_ready(metrics["loss"])
                warm = (step, time.perf_counter())
        flush_pending()
        if metrics is not None:
            jax.block_until_ready(metrics["loss"])
    progress.close()
    checkpointer.close()
    # The first steps include compilation; report the steady state after them.
    steps_per_s = None
    if warm is not None and step > warm[0]:
        steps_per_s = (step - warm[0]) / (time.perf_counter() - warm[1])
    summary.update(
        step=step,
        steps_per_s=steps_per_s,
        checkpoint_dir=str(checkpointer.directory),
    )
    if jax.process_index() == 0:
        (workdir / f"{task.name}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _has_checkpoint(directory: epath.Path) -> bool:
    return bool(step_dirs(directory))


def _load_pretrained(state, pretrained: dict[str, str]):
    """Replaces parameter groups by those of earlier runs (params only, never their optimizer)."""
    if not pretrained:
        return state
    params = dict(state.params)
    for group, source in pretrained.items():
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params[group]
        )
        workdir_of, inner, fresh, step = _pretrained_source(source)
        loaded = load_pretrained_params(
            workdir_of, group, abstract, step=step, group=inner, fresh=fresh
        )
        # Submodules named `fresh` that the checkpoint lacks keep their initialization.
        params[group] = {**params[group], **loaded}
    return state.replace(params=params)


def _pretrained_source(
    source: str | tuple,
) -> tuple[str, str | None, tuple[str, ...], int | None]:
    """A run's workdir (its whole parameter tree), or (workdir, group) for one group of it, or
    (workdir, group, fresh): `fresh` submodules may be missing from that run (e.g. a new
    auxiliary head) and then start from their initialization; or (workdir, group, fresh, step):
    that checkpoint of the run instead of its newest."""
    if isinstance(source, str):
        return source, None, (), None
    workdir_of, inner, *rest = source
    fresh = tuple(rest[0]) if rest else ()
    return workdir_of, inner, fresh, rest[1] if len(rest) > 1 else None


def evaluate(config, section, eval_step, state, in_sharding, operations=None) -> dict[str, float]:
    """Mean eval metrics over `config.eval_batches` validation batches."""
    eval_iter = make_eval_iterator(
        config.data_dir,
        "validation",
        global_batch_size=section.batch_size,
        clip_len=config.clip_len,
        frame_size=config.frame_size,
        dataset=config.get("dataset", DATASET_NAME),
        operations=operations,
    )
    totals: dict[str, float] = {}
    count = 0
    for local_batch in eval_iter:
        scalars = _fetch(eval_step(state, to_global_batch(local_batch, in_sharding)))
        for k, v in scalars.items():
            totals[k] = totals.get(k, 0.0) + v
        count += 1
        if count >= config.eval_batches:
            break
    if count == 0:
        raise DataError(
            f"validation split of {config.data_dir} holds fewer than one batch of "
            f"{section.batch_size} clips"
        )
    return {k: v / count for k, v in totals.items()}
