"""Orbax checkpoints of the train state together with the grain iterator state.

Saves are asynchronous (training continues while the files are written) and keep
`max_to_keep`; restores go straight into the target shardings, so a run saved on one mesh
resumes on another. Only the pytree part of the state is saved: `apply_fn` and `tx` come from
the config that restores it. The directory may be on an object store (`gs://...`): orbax writes
there itself, given the `epath.Path` that `genie_jax.train.workdir` makes.
"""

import os
import sys
import time
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from genie_jax.data.pipeline import iterator_restore_args, iterator_save_args
from genie_jax.train.state import TrainState
from genie_jax.train.tree_shapes import describe_mismatch, flat_shapes
from genie_jax.train.workdir import absolute_path, move_directory, workdir_path


class CheckpointNotFoundError(FileNotFoundError):
    pass


class CheckpointMismatchError(ValueError):
    """A checkpoint whose arrays do not fit the state the config builds."""


class CheckpointCorruptError(RuntimeError):
    """No checkpoint of a run can be read."""


CORRUPT_DIR = "corrupt_checkpoints"


def step_dirs(directory: str | os.PathLike) -> list[int]:
    """The steps with a directory under a run's `checkpoints/` (sorted; [] if it is missing)."""
    directory = workdir_path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def resolved_step(workdir: str | os.PathLike, step: int | None) -> int:
    """`step`, or the newest checkpoint step of a run's workdir when `step` is None; a run
    with no checkpoint, or none at `step`, is refused in one line."""
    steps = step_dirs(workdir_path(workdir) / "checkpoints")
    if not steps:
        raise CheckpointNotFoundError(f"{workdir} holds no checkpoint: train the run first")
    if step is not None and step not in steps:
        raise CheckpointNotFoundError(
            f"{workdir} has no checkpoint at step {step} (it has {', '.join(map(str, steps))})"
        )
    return steps[-1] if step is None else int(step)


def _arrays(state: TrainState) -> dict[str, Any]:
    return {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "model_state": state.model_state,
    }


class Checkpointer:
    """`workdir/checkpoints/<step>/{state,data}` managed by an orbax CheckpointManager."""

    def __init__(
        self, directory: str | os.PathLike, *, max_to_keep: int = 3, async_save: bool = True
    ):
        self.directory: epath.Path = absolute_path(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=True,
                enable_async_checkpointing=async_save,
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, state: TrainState, data_iterator: Any | None = None) -> None:
        """Starts saving `state` (and the iterator's position) under its step."""
        items = {"state": ocp.args.StandardSave(_arrays(state))}
        if data_iterator is not None:
            items["data"] = iterator_save_args(data_iterator)
        self._manager.save(int(jax.device_get(state.step)), args=ocp.args.Composite(**items))

    def restore(
        self,
        abstract_state: TrainState,
        data_iterator: Any | None = None,
        step: int | None = None,
    ) -> TrainState:
        """Restores into the shardings carried by `abstract_state`'s leaves.

        `abstract_state` also supplies the non-array fields (apply_fn, tx). `step` None takes
        the newest checkpoint that can be read: a newer one that cannot (a truncated or deleted
        file) is reported, moved to `corrupt_checkpoints/` next to `checkpoints/` (so the run
        can save that step again and nothing is deleted), and the one before it is restored.
        A checkpoint that does not fit the config is an error, not a fallback.
        The data iterator, when given, is moved to the saved position in place.
        """
        available = sorted(self.all_steps(), reverse=True)
        if step is not None and step not in available or not available:
            wanted = "checkpoint" if step is None else f"checkpoint for step {step}"
            raise CheckpointNotFoundError(
                f"no {wanted} in {self.directory} (available steps: {sorted(available) or 'none'})"
            )
        if step is not None:
            return self._restore_step(abstract_state, data_iterator, step)
        for newer, candidate in enumerate(available):
            try:
                restored = self._restore_step(abstract_state, data_iterator, candidate)
            except CheckpointMismatchError:
                raise
            except Exception as error:  # orbax and tensorstore raise assorted types
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                if newer == len(available) - 1:
                    raise CheckpointCorruptError(
                        f"no checkpoint in {self.directory} can be read (steps "
                        f"{sorted(available)}); the oldest, step {candidate}, fails with: {reason}"
                    ) from error
                warnings.warn(
                    f"checkpoint step {candidate} in {self.directory} cannot be read ({reason}); "
                    f"falling back to step {available[newer + 1]}",
                    stacklevel=2,
                )
                continue
            self._set_aside(available[:newer])
            return restored
        raise AssertionError("unreachable")

    def _restore_step(self, abstract_state: TrainState, data_iterator, step: int) -> TrainState:
        self._check_fits(abstract_state, step)
        items = {"state": ocp.args.StandardRestore(_arrays(abstract_state))}
        if data_iterator is not None:
            items["data"] = iterator_restore_args(data_iterator)
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return abstract_state.replace(**restored["state"])

    def _set_aside(self, unreadable: list[int]) -> None:
        """Moves unreadable step directories out of the manager's sight (process 0 moves, every
        process waits for it). On an object store a move copies every file, then deletes."""
        if not unreadable:
            return
        if jax.process_index() == 0:
            aside = self.directory.parent / CORRUPT_DIR
            aside.mkdir(exist_ok=True)
            for step in unreadable:
                target = aside / f"{step}.{int(time.time())}"
                move_directory(self.directory / str(step), target)
                print(f"moved unreadable checkpoint step {step} to {target}", file=sys.stderr)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoint set aside")
        self._manager.reload()

    def _check_fits(self, abstract_state: TrainState, step: int) -> None:
        """Names the first parameter (then optimizer or model-state array) whose path or shape
        differs between the checkpoint and `abstract_state`."""
        reader = ocp.CheckpointManager(
            self.directory, item_handlers={"state": ocp.PyTreeCheckpointHandler()}
        )
        try:
            saved = reader.item_metadata(step)["state"]
        finally:
            reader.close()
        if saved is None:
            return  # no metadata to check against: orbax's own errors apply
        want = _arrays(abstract_state)
        problems = []
        for part in ("params", "opt_state", "model_state"):
            problems += [
                f"{part}/{line}"
                for line in describe_mismatch(
                    flat_shapes(want[part]), flat_shapes(saved.get(part, {}))
                )
            ]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CheckpointMismatchError(
                f"the checkpoint in {self.directory} (step {step}) does not fit this config: "
                f"{problems[0]}{more}. Was the model config changed after the run started? "
                "Train it with a new --workdir, or restore with the run's own config.json."
            )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
