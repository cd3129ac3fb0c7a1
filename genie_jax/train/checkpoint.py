"""Orbax checkpoints of the train state together with the grain iterator state.

Saves are asynchronous (training continues while the files are written) and keep
`max_to_keep`; restores go straight into the target shardings, so a run saved on one mesh
resumes on another. Only the pytree part of the state is saved: `apply_fn` and `tx` come from
the config that restores it.
"""

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp

from genie_jax.data.pipeline import iterator_restore_args, iterator_save_args
from genie_jax.train.state import TrainState


class CheckpointNotFoundError(FileNotFoundError):
    pass


def resolved_step(workdir: str | pathlib.Path, step: int | None) -> int:
    """`step`, or the newest checkpoint step of a run's workdir when `step` is None."""
    if step is not None:
        return step
    steps = [
        int(p.name) for p in (pathlib.Path(workdir) / "checkpoints").iterdir() if p.name.isdigit()
    ]
    return max(steps)


def _arrays(state: TrainState) -> dict[str, Any]:
    return {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "model_state": state.model_state,
    }


class Checkpointer:
    """`workdir/checkpoints/<step>/{state,data}` managed by an orbax CheckpointManager."""

    def __init__(self, directory: pathlib.Path, *, max_to_keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
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
        the newest.
        The data iterator, when given, is moved to the saved position in place.
        """
        available = self.all_steps()
        if step is None:
            step = self.latest_step()
        if step is None or step not in available:
            wanted = "checkpoint" if step is None else f"checkpoint for step {step}"
            raise CheckpointNotFoundError(
                f"no {wanted} in {self.directory} (available steps: {sorted(available) or 'none'})"
            )
        items = {"state": ocp.args.StandardRestore(_arrays(abstract_state))}
        if data_iterator is not None:
            items["data"] = iterator_restore_args(data_iterator)
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return abstract_state.replace(**restored["state"])

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
