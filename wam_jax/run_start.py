"""Where a WAM run's weights came from: the run and checkpoint of `config.wam.init_workdir` it
started from, and how many training steps lie behind that checkpoint.

A run started from another's weights (the VPT route from the BC run of its seed, the joint WAM
from the route) has trained the steps of its whole chain, not only its own, and two methods
are compared at equal steps (`wam summarize`). So a fresh start from another run writes
`start.json` beside its checkpoints; a run resumed from its own checkpoint keeps the record of
its fresh start, even where its `init_workdir` has trained on or is gone since.
"""

import json
import os

from etils import epath

from genie_jax.config_loading import ConfigError
from genie_jax.train.checkpoint import CheckpointNotFoundError, resolved_step, step_dirs
from genie_jax.train.workdir import absolute_path, workdir_path

START_FILE = "start.json"


def recorded_start(workdir: str | os.PathLike) -> dict | None:
    """The run's `start.json` (None where it has none: a run from scratch, or one written
    before the record existed)."""
    path = workdir_path(workdir) / START_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def steps_before(workdir: str | os.PathLike, config: dict | None = None) -> int | None:
    """Training steps behind a run's first step: 0 for a run from scratch, its record's
    `steps_before` for one started from another run, None where that is not on record (a run
    from another's weights written before `start.json`). `config`: the run's resolved config
    (read from its `config.json` when not given)."""
    if config is None:
        path = workdir_path(workdir) / "config.json"
        config = json.loads(path.read_text()) if path.exists() else {}
    if not config.get("wam", {}).get("init_workdir", ""):
        return 0
    start = recorded_start(workdir)
    return None if start is None else start["steps_before"]


def run_start(
    workdir: str | os.PathLike, init_workdir: str | os.PathLike, init_step: int = -1
) -> dict | None:
    """The start of the run in `workdir` from `init_workdir` (None without one): on a fresh
    start, `init_step` of that run (its newest checkpoint when negative) and the steps behind
    it, its own steps included; on a resume, the run's record (None values where it has none:
    the loaded step is not known afterwards)."""
    if not init_workdir:
        return None
    workdir = workdir_path(workdir)
    init_path = os.fspath(absolute_path(init_workdir))
    if step_dirs(workdir / "checkpoints"):
        recorded = recorded_start(workdir)
        if recorded is not None:
            return recorded
        return {"init_workdir": init_path, "init_step": None, "steps_before": None}
    try:
        step = resolved_step(init_workdir, None if init_step < 0 else int(init_step))
    except CheckpointNotFoundError as error:
        raise ConfigError(f"config.wam.init_workdir / init_step: {error}") from None
    before = steps_before(init_workdir)
    return {
        "init_workdir": init_path,
        "init_step": step,
        # None: the start run's own start is not on record.
        "steps_before": None if before is None else before + step,
    }


def write_start(workdir: epath.Path, start: dict | None) -> None:
    """`start.json` on a fresh start (nothing on a resume). A fresh start that failed before
    its first checkpoint is rewritten by the next, so a stale record never outlives its
    config, and one from scratch leaves none."""
    if step_dirs(workdir / "checkpoints"):
        return
    path = workdir / START_FILE
    if start is None:
        if path.exists():
            path.unlink()
        return
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(start, indent=2) + "\n")
