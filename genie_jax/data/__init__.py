"""CoinRun data: a TFDS builder that plays and writes clips, and grain pipelines that read them.

  build_coinrun(out_dir, episodes, ...)          -> dataset dir   (coinrun_builder.py)
  make_train_iterator(data_dir, split, ...)      -> shuffled, endless, resumable batches
  make_eval_iterator(data_dir, split, ...)       -> one ordered pass
  to_global_batch(local_batch, sharding)         -> dict of global jax.Array
  iterator_save_args / iterator_restore_args     -> orbax args for the iterator's position

Batches are `{"video": uint8 [B, T, H, W, 3], "actions": int32 [B, T]}`. Every problem with the
data on disk or with the requested shapes raises `DataError`.
"""

from genie_jax.data.coinrun_builder import build_coinrun
from genie_jax.data.errors import DataError
from genie_jax.data.pipeline import (
    iterator_restore_args,
    iterator_save_args,
    make_eval_iterator,
    make_train_iterator,
    to_global_batch,
)
from genie_jax.data.source import ClipSource, open_split

__all__ = [
    "ClipSource",
    "DataError",
    "build_coinrun",
    "iterator_restore_args",
    "iterator_save_args",
    "make_eval_iterator",
    "make_train_iterator",
    "open_split",
    "to_global_batch",
]
