"""grain input pipelines over clip datasets (CoinRun by default), and their hand-off to
sharded `jax.Array`s.

Each JAX process reads its own shard of the split (`grain.sharding.ShardByJaxProcess`) and
batches `global_batch_size // process_count` clips; `to_global_batch` then assembles the
per-process batches into global arrays. Batches are dicts of numpy arrays:

  video    uint8 [B, T, H, W, 3]
  actions  int32 [B, T]

The train iterator is a `grain.DataLoaderIterator`, whose position saves and restores with
orbax alongside the train state:

  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), data=iterator_save_args(it)))
  mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), data=iterator_restore_args(it)))

Restoring moves `it` (built with the same data and settings) in place. Each process writes its
own `process_<i>-of-<n>.json`, so the data position restores only onto the same process count.
"""

import pathlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
from absl import flags

from genie_jax.data.coinrun_builder import DATASET_NAME
from genie_jax.data.errors import DataError
from genie_jax.data.source import ClipSource, open_split

__all__ = [
    "iterator_restore_args",
    "iterator_save_args",
    "make_eval_iterator",
    "make_train_iterator",
    "open_split",
    "to_global_batch",
]

Batch = dict[str, np.ndarray]
_MODEL_FIELDS = ("video", "actions")


class _ModelFields(grain.transforms.Map):
    """Keeps what the models consume; the bookkeeping fields stay on disk."""

    def map(self, element: dict) -> dict:
        return {k: element[k] for k in _MODEL_FIELDS}


def _per_process_batch_size(global_batch_size: int) -> int:
    count = jax.process_count()
    if global_batch_size < 1:
        raise DataError(f"global batch size must be positive, got {global_batch_size}")
    if global_batch_size % count:
        raise DataError(
            f"global batch size {global_batch_size} is not divisible by the {count} JAX processes"
        )
    return global_batch_size // count


def _loader(
    source: ClipSource,
    *,
    global_batch_size: int,
    shuffle: bool,
    num_epochs: int | None,
    seed: int,
    worker_count: int,
    operations: Sequence[grain.transforms.Map | grain.transforms.Filter] | None,
) -> grain.DataLoader:
    batch_size = _per_process_batch_size(global_batch_size)
    # drop_remainder: every process then holds the same number of records, so no process runs
    # out of data (or waits for a batch) before the others.
    shard = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    records_per_process = len(source) // shard.shard_count
    if records_per_process < batch_size:
        raise DataError(
            f"{source!r} gives each of {shard.shard_count} processes {records_per_process} "
            f"clips, fewer than one batch of {batch_size}"
        )
    if worker_count > 0 and not flags.FLAGS.is_parsed():
        # grain 0.2.18 reads one of its absl flags when it starts worker processes and fails if
        # the program never parsed absl flags (any entry point other than `absl.app.run`).
        # Their defaults are what we want.
        flags.FLAGS.mark_as_parsed()
    sampler = grain.samplers.IndexSampler(
        num_records=len(source),
        shard_options=shard,
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed,
    )
    return grain.DataLoader(
        data_source=source,
        sampler=sampler,
        operations=[
            *(operations if operations is not None else [_ModelFields()]),
            grain.transforms.Batch(batch_size, drop_remainder=True),
        ],
        worker_count=worker_count,
        # A few batches ahead is enough: clips decode far faster than a train step.
        read_options=grain.ReadOptions(num_threads=4, prefetch_buffer_size=4 * batch_size),
    )


def make_train_iterator(
    data_dir: str | pathlib.Path,
    split: str = "train",
    *,
    global_batch_size: int,
    clip_len: int,
    frame_size: int,
    seed: int,
    worker_count: int = 0,
    dataset: str = DATASET_NAME,
    operations: Sequence[grain.transforms.Map | grain.transforms.Filter] | None = None,
    source_view: Callable[[ClipSource], Any] | None = None,
) -> grain.DataLoaderIterator:
    """Shuffled batches repeated forever; the order is a function of `seed` only.

    Each epoch is a fresh permutation of the split. The returned iterator's `get_state()` /
    `set_state()` (or `iterator_save_args` / `iterator_restore_args` with orbax) resume it
    exactly. `worker_count > 0` decodes in that many child processes. `operations` (grain
    maps and filters) replace the default per-record step, which keeps `video` and `actions`.
    `source_view` maps the opened split to the random-access source to sample from (e.g. one
    that repeats some records); its `repr` must name what it does, as grain checks it on restore.
    """
    source = open_split(data_dir, split, clip_len=clip_len, frame_size=frame_size, dataset=dataset)
    if source_view is not None:
        source = source_view(source)
    loader = _loader(
        source,
        global_batch_size=global_batch_size,
        shuffle=True,
        num_epochs=None,
        seed=seed,
        worker_count=worker_count,
        operations=operations,
    )
    return iter(loader)


def make_eval_iterator(
    data_dir: str | pathlib.Path,
    split: str = "validation",
    *,
    global_batch_size: int,
    clip_len: int,
    frame_size: int,
    worker_count: int = 0,
    dataset: str = DATASET_NAME,
    operations: Sequence[grain.transforms.Map | grain.transforms.Filter] | None = None,
) -> Iterator[Batch]:
    """One pass over the split in stored order, in full batches.

    The last partial batch is dropped (fixed shapes avoid a recompile); with `N` clips and `P`
    processes that skips at most `global_batch_size - 1 + N % P` clips. Calling this again gives
    the same batches.
    """
    source = open_split(data_dir, split, clip_len=clip_len, frame_size=frame_size, dataset=dataset)
    loader = _loader(
        source,
        global_batch_size=global_batch_size,
        shuffle=False,
        num_epochs=1,
        seed=0,  # unused without shuffling, but the sampler wants one
        worker_count=worker_count,
        operations=operations,
    )
    return iter(loader)


def iterator_save_args(iterator: grain.DataLoaderIterator) -> grain.checkpoint.CheckpointSave:
    """The orbax save argument for an iterator's position (one JSON file per process)."""
    return grain.checkpoint.CheckpointSave(iterator)


def iterator_restore_args(
    iterator: grain.DataLoaderIterator,
) -> grain.checkpoint.CheckpointRestore:
    """The orbax restore argument that moves `iterator` (built with the same settings) to the
    saved position."""
    return grain.checkpoint.CheckpointRestore(iterator)


def to_global_batch(
    local_batch: Mapping[str, np.ndarray],
    sharding: jax.sharding.Sharding | Mapping[str, jax.sharding.Sharding],
) -> dict[str, jax.Array]:
    """Assembles each process's batch into global arrays sharded along the batch axis.

    Args:
      local_batch: this process's batch, e.g. `video` `[B / P, T, H, W, 3]` for P processes.
      sharding: one sharding for every field, or one per field. Its leading mesh axes split the
        batch dimension; the global batch is the processes' batches concatenated in process
        order.
    """
    if isinstance(sharding, jax.sharding.Sharding):
        sharding = {k: sharding for k in local_batch}
    missing = set(local_batch) - set(sharding)
    if missing:
        raise DataError(f"no sharding given for batch fields {sorted(missing)}")
    return {
        k: jax.make_array_from_process_local_data(sharding[k], v) for k, v in local_batch.items()
    }
