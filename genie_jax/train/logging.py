"""Metric writers: TensorBoard event files and `metrics.jsonl`, plus the progress bar.

DEVIATION from the plan of using `clu.metric_writers`: that package imports TensorFlow at import
time, which would add TensorFlow to every install. These writers keep clu's interface
(`write_scalars(step, scalars)`, `flush`, `close`) and write TensorBoard events through
tensorboardX instead. Only process 0 writes.

A workdir on an object store (`gs://...`, see `genie_jax.train.workdir`) cannot be appended to,
and tensorboardX reaches `gs://` only through google-cloud-storage, which is not installed. There
`metrics.jsonl` is kept in memory and rewritten whole on each `flush` (the loop flushes at every
eval and checkpoint), starting from the rows already in the object so a resumed run loses none;
and TensorBoard writes its event files to a local temporary directory and each `flush` copies
them to `workdir/tensorboard/`. On disk both behave as they always have.
"""

import json
import math
import os
import pathlib
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import tqdm
from etils import epath

from genie_jax.train.workdir import is_remote, workdir_path


class JsonlWriter:
    """Appends one JSON object per `write_scalars` call: {"step": ..., **scalars}."""

    def __init__(self, path: str | os.PathLike):
        self._file = open(path, "a", buffering=1)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._file.write(_jsonl_row(step, scalars))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RewrittenJsonlWriter:
    """`JsonlWriter` for an object store, which cannot append: the rows live in memory and each
    `flush` rewrites the whole object. It starts from the object's rows (a resumed run's)."""

    def __init__(self, path: epath.Path):
        self._path = path
        self._rows = [path.read_text()] if path.exists() else []
        self._unwritten = False

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._rows.append(_jsonl_row(step, scalars))
        self._unwritten = True

    def flush(self) -> None:
        if self._unwritten:
            self._path.write_text("".join(self._rows))
            self._unwritten = False

    def close(self) -> None:
        self.flush()


class TensorBoardWriter:
    def __init__(self, logdir: str | os.PathLike, filename_suffix: str = ""):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(str(logdir), filename_suffix=filename_suffix)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class CopiedTensorBoardWriter:
    """`TensorBoardWriter` for an object store: events go to a local temporary directory and each
    `flush` copies the event files (whole) to `logdir`. A resumed run adds a new event file: the
    random suffix keeps it from replacing the last one when both start in the same second (the
    time in tensorboardX's file names)."""

    def __init__(self, logdir: epath.Path):
        self._logdir = logdir
        self._local = pathlib.Path(tempfile.mkdtemp(prefix="tensorboard-"))
        self._writer = TensorBoardWriter(self._local, filename_suffix=f".{uuid.uuid4().hex[:8]}")
        self._unwritten = False

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self._writer.write_scalars(step, scalars)
        self._unwritten = True

    def flush(self) -> None:
        self._writer.flush()
        self._copy()

    def close(self) -> None:
        self._writer.close()
        self._copy()
        shutil.rmtree(self._local, ignore_errors=True)

    def _copy(self) -> None:
        """Uploads the event files, only when rows came since the last upload (an eval and a
        checkpoint at the same step flush twice)."""
        if not self._unwritten:
            return
        self._unwritten = False
        for file in sorted(self._local.rglob("*")):
            if file.is_file():
                target = self._logdir / file.relative_to(self._local).as_posix()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(file.read_bytes())


class MultiWriter:
    def __init__(self, writers: Sequence):
        self._writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for writer in self._writers:
            writer.write_scalars(step, scalars)

    def flush(self) -> None:
        for writer in self._writers:
            writer.flush()

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


def create_writer(workdir: str | os.PathLike) -> MultiWriter:
    """TensorBoard under `workdir/tensorboard` and `workdir/metrics.jsonl` (process 0 only)."""
    if jax.process_index() != 0:
        return MultiWriter([])
    workdir = workdir_path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    metrics, tensorboard = workdir / "metrics.jsonl", workdir / "tensorboard"
    if is_remote(workdir):
        return MultiWriter([RewrittenJsonlWriter(metrics), CopiedTensorBoardWriter(tensorboard)])
    return MultiWriter([JsonlWriter(metrics), TensorBoardWriter(tensorboard)])


def _jsonl_row(step: int, scalars: Mapping[str, float]) -> str:
    """One line of `metrics.jsonl`: {"step": ..., **scalars}."""
    record = {"step": int(step), **{k: _to_json_number(v) for k, v in scalars.items()}}
    return json.dumps(record) + "\n"


def _to_json_number(value) -> float | int | None:
    value = np.asarray(value).item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


class Progress:
    """A tqdm bar over steps with steps/s, ETA, and the latest loss (process 0 only)."""

    def __init__(self, total_steps: int, start_step: int, description: str):
        self._bar = tqdm.tqdm(
            total=total_steps,
            initial=start_step,
            desc=description,
            unit="step",
            dynamic_ncols=True,
            disable=jax.process_index() != 0,
        )

    def update(self, steps: int, **postfix: float) -> None:
        self._bar.update(steps)
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def close(self) -> None:
        self._bar.close()
