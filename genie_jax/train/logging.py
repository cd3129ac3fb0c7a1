"""Metric writers: TensorBoard event files and `metrics.jsonl`, plus the progress bar.

DEVIATION from the plan of using `clu.metric_writers`: that package imports TensorFlow at import
time, which would add TensorFlow to every install. These writers keep clu's interface
(`write_scalars(step, scalars)`, `flush`, `close`) and write TensorBoard events through
tensorboardX instead. Only process 0 writes.
"""

import json
import math
import pathlib
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import tqdm


class JsonlWriter:
    """Appends one JSON object per `write_scalars` call: {"step": ..., **scalars}."""

    def __init__(self, path: pathlib.Path):
        self._file = open(path, "a", buffering=1)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        record = {"step": int(step), **{k: _to_json_number(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardWriter:
    def __init__(self, logdir: pathlib.Path):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(str(logdir))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), int(step))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


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


def create_writer(workdir: pathlib.Path) -> MultiWriter:
    """TensorBoard under `workdir/tensorboard` and `workdir/metrics.jsonl` (process 0 only)."""
    if jax.process_index() != 0:
        return MultiWriter([])
    workdir.mkdir(parents=True, exist_ok=True)
    return MultiWriter(
        [JsonlWriter(workdir / "metrics.jsonl"), TensorBoardWriter(workdir / "tensorboard")]
    )


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
