"""`genie ckpt info`: what a run's checkpoints hold, as one JSON object.

steps           every step with a checkpoint directory
latest_good     the newest step whose parameters read back in full (null if none)
unreadable      newer steps that failed to read, with the first line of the reason
config_hash     sha256 of the run's config.json with sorted keys, `data_dir` left out (the
                same data may live elsewhere); null without a config.json
param_checksum  sha256 over the parameters of `latest_good`: every array's path, dtype,
                shape and bytes in path order, so two runs (or a resumed and an uninterrupted
                one) compare bit for bit
num_params      the number of parameter values in `latest_good`
"""

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from genie_jax.train.checkpoint import CheckpointNotFoundError, step_dirs
from genie_jax.train.workdir import absolute_path

CONFIG_FILE = "config.json"


def config_hash(workdir: epath.Path) -> str | None:
    try:
        config = json.loads((workdir / CONFIG_FILE).read_text())
    except FileNotFoundError:
        return None
    config.pop("data_dir", None)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def params_checksum(params: Any) -> tuple[str, int]:
    """(sha256 hex, number of values) of a parameter tree."""
    digest = hashlib.sha256()
    count = 0
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(flat, key=lambda item: jax.tree_util.keystr(item[0])):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
        count += array.size
    return digest.hexdigest(), count


def _read_params(manager: ocp.CheckpointManager, step: int) -> Any:
    """The step's parameters as host numpy arrays, whatever mesh wrote them."""
    saved = manager.item_metadata(step)["state"]["params"]
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), saved)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                item={"params": saved},
                restore_args={"params": as_numpy},
                partial_restore=True,
            )
        ),
    )
    return restored["state"]["params"]


def checkpoint_info(workdir: str | os.PathLike) -> dict:
    workdir = absolute_path(workdir)
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        raise CheckpointNotFoundError(f"no checkpoints directory in {workdir}")
    steps = step_dirs(directory)
    info: dict[str, Any] = {
        "workdir": str(workdir),
        "steps": steps,
        "latest_good": None,
        "unreadable": {},
        "config_hash": config_hash(workdir),
        "param_checksum": None,
        "num_params": None,
    }
    manager = ocp.CheckpointManager(
        directory, item_handlers={"state": ocp.PyTreeCheckpointHandler()}
    )
    try:
        for step in reversed(steps):
            try:
                params = _read_params(manager, step)
            except Exception as error:  # orbax and tensorstore raise assorted types
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                info["unreadable"][str(step)] = reason
                continue
            info["latest_good"] = step
            info["param_checksum"], info["num_params"] = params_checksum(params)
            break
    finally:
        manager.close()
    return info
