"""Loading the parameters of a pretrained part (tokenizer, LAM) from its own training run.

Only `params` are read: the part's optimizer state and step stay behind (carrying them over is
a pitfall listed in GENIE_FACTS). Shapes are checked against the checkpoint's metadata first,
so a tokenizer trained with another codebook size fails with a message that says so instead of
an orbax traceback.
"""

import json
import os
from typing import Any

import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from genie_jax.train.checkpoint import CheckpointNotFoundError
from genie_jax.train.tree_shapes import describe_mismatch, flat_shapes
from genie_jax.train.workdir import absolute_path


class PretrainedMismatchError(ValueError):
    pass


def _saved_model_config(workdir: epath.Path, part: str) -> dict | None:
    try:
        return json.loads((workdir / "config.json").read_text())[part]["model"]
    except (OSError, KeyError, ValueError):
        return None


def load_pretrained_params(
    workdir: str | os.PathLike,
    part: str,
    abstract_params: Any,
    *,
    check_only: bool = False,
    step: int | None = None,
    group: str | None = None,
    fresh: tuple[str, ...] = (),
) -> Any:
    """Newest `params` of the `part` run in `workdir`, restored into `abstract_params`'s shardings.

    abstract_params: a tree of `jax.ShapeDtypeStruct` with `.sharding` (the slice of the
    abstract train state that will hold them). `check_only` stops after the checks (missing
    checkpoint, shape mismatch) and returns None. `step` picks a checkpoint (default newest).
    `group` reads one top-level parameter group of a run that trained several parts (e.g. the
    `wam` group of a WAM run) instead of the run's whole parameter tree. `fresh` names
    top-level submodules (e.g. an auxiliary head) that may be missing from the checkpoint:
    they are left out of the returned tree, for the caller to keep at their initialization.
    """
    workdir = absolute_path(workdir)
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        raise CheckpointNotFoundError(
            f"no {part} checkpoints in {directory}: train it first with `genie train {part}`"
        )
    # Only the "state" item is read; the data iterator position of that run does not matter.
    previous_verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    manager = ocp.CheckpointManager(
        directory, item_handlers={"state": ocp.PyTreeCheckpointHandler()}
    )
    try:
        available = sorted(manager.all_steps())
        if step is None:
            step = manager.latest_step()
        if step is None or step not in available:
            wanted = "finished" if step is None else f"step {step}"
            raise CheckpointNotFoundError(
                f"no {wanted} {part} checkpoint in {directory} (available: {available or 'none'})"
            )
        saved = manager.item_metadata(step)["state"]["params"]
        if group is not None:
            if group not in saved:
                raise PretrainedMismatchError(
                    f"the checkpoint in {directory} (step {step}) has no {group!r} parameters "
                    f"(it has {', '.join(sorted(saved))})"
                )
            saved = saved[group]
        absent = sorted(name for name in fresh if name in abstract_params and name not in saved)
        if absent:
            abstract_params = {k: v for k, v in abstract_params.items() if k not in absent}
        problems = describe_mismatch(flat_shapes(abstract_params), flat_shapes(saved))
        if problems:
            hint = ""
            saved_config = _saved_model_config(workdir, part)
            if saved_config is not None:
                hint = f"\n  the checkpoint's {part} config: {saved_config}"
            raise PretrainedMismatchError(
                f"the {part} checkpoint in {directory} (step {step}) does not fit this config's "
                f"{part} model:\n  " + "\n  ".join(problems[:8]) + hint
            )
        if check_only:
            return None
        wanted = abstract_params if group is None else {group: abstract_params}
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item={"params": wanted},
                    restore_args={"params": ocp.checkpoint_utils.construct_restore_args(wanted)},
                    partial_restore=True,
                )
            ),
        )
    finally:
        manager.close()
        logging.set_verbosity(previous_verbosity)
    kept = f"; {', '.join(absent)} not in it, kept as initialized" if absent else ""
    print(f"loaded {part} params from {directory} (step {step}){kept}")
    params = restored["state"]["params"]
    return params if group is None else params[group]
