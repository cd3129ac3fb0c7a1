"""Finding a built clip dataset on disk and reading one split of it by index.

Any TFDS ArrayRecord dataset whose examples hold `video` uint8 `[T, H, W, 3]` can be read:
CoinRun (`coinrun_clips`, the default) and the datasets other packages build on the same layout
(`DATA/<dataset>/<config>/<version>/`), named by `dataset=` (`config.dataset` in the configs).

`open_split` turns every way a data directory can be wrong (missing, empty, an unfinished build,
clips of another length or size, no such split) into a one-line `DataError` before training
starts, and wraps the split so a record that fails to read names its file and index.
"""

import bisect
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from genie_jax.data.coinrun_builder import DATASET_NAME, config_name
from genie_jax.data.errors import DataError

_INFO_FILE = "dataset_info.json"


class ClipSource:
    """Random access to the clips of one split: `len(source)`, `source[i]` -> dict of arrays.

    Wraps the TFDS ArrayRecord data source so that a record that cannot be read or decoded
    raises `DataError` naming the file and the record instead of a parser error.
    """

    def __init__(self, builder: tfds.core.DatasetBuilder, split: str):
        self._source = builder.as_data_source(split=split)
        # The generation settings the builder recorded: clip_len, seed ranges per split, ...
        self.metadata: dict = dict(builder.info.metadata or {})
        self.fields: frozenset[str] = frozenset(builder.info.features.keys())
        self.version = str(builder.info.version)
        self._name = f"{builder.info.full_name}[{split}]"
        files = builder.info.splits[split].file_instructions
        self._files = [f.filename for f in files]
        # First global index of each file, to name the file holding a bad record.
        self._starts = np.cumsum([0] + [f.take for f in files[:-1]]).tolist()

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        try:
            return self._source[index]
        except Exception as e:  # array_record and protobuf raise assorted types
            f = bisect.bisect_right(self._starts, index) - 1
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(
                f"corrupt record {index - self._starts[f]} of {self._files[f]} "
                f"({self._name} record {index}): {reason}"
            ) from e

    def __repr__(self) -> str:
        # grain checks this string when restoring iterator state; it names the data, not the
        # path, so a dataset copied to another disk still restores. CoinRun keeps the class's
        # old name so that runs saved before the rename still resume.
        kind = "CoinrunSource" if self._name.startswith(DATASET_NAME + "/") else "ClipSource"
        return f"{kind}({self._name}, {len(self)} records)"


def _find_dataset_dir(data_dir: pathlib.Path, dataset: str, config: str) -> pathlib.Path:
    """The finished `dataset` directory under `data_dir`, preferring the builder config `config`."""
    if not data_dir.is_dir():
        raise DataError(f"data dir {data_dir} does not exist; build the {dataset} dataset first")
    if (data_dir / _INFO_FILE).exists():  # the directory the builder returned
        return data_dir
    root = data_dir / dataset
    found = sorted(p.parent for p in root.glob(f"*/*/{_INFO_FILE}") if _is_finished(p.parent))
    if not found:
        if any(root.glob("*/incomplete.*")):
            raise DataError(
                f"data dir {data_dir} holds only an unfinished {dataset} build; rerun the build"
            )
        raise DataError(f"data dir {data_dir} holds no {dataset} dataset (no {dataset}/<config>/)")
    preferred = [p for p in found if p.parent.name == config]
    if not preferred and len({p.parent.name for p in found}) > 1:
        raise DataError(
            f"data dir {data_dir} holds several {dataset} builds "
            f"({', '.join(sorted({p.parent.name for p in found}))}) and none is {config!r}; "
            "pass the dataset directory itself"
        )
    # With no match, return another config so the caller reports what it has instead.
    return (preferred or found)[-1]  # the highest version


def _is_finished(dataset_dir: pathlib.Path) -> bool:
    # TFDS writes into `incomplete.*` and renames only when the whole build has succeeded.
    return not dataset_dir.name.startswith("incomplete.")


def open_split(
    data_dir: str | pathlib.Path,
    split: str,
    *,
    clip_len: int,
    frame_size: int,
    dataset: str = DATASET_NAME,
    config: str | None = None,
) -> ClipSource:
    """Opens one split of a clip dataset after checking it matches the model's config.

    Args:
      data_dir: the `out_dir` given to the builder, or the dataset directory it returned.
      split: "train", "validation" or "test".
      clip_len: frames per clip the model expects.
      frame_size: height and width of the frames the model expects.
      dataset: the TFDS dataset name (CoinRun by default).
      config: the builder config to prefer under `data_dir` (CoinRun: `clip{clip_len}`).

    Returns:
      A random-access source whose items are dicts with `video` uint8 `[T, H, W, 3]` and the
      dataset's other fields (CoinRun: `actions` int32 `[T]`, `level_seed`, `episode`,
      `clip_index`).
    """
    if config is None:
        config = config_name(clip_len)
    dataset_dir = _find_dataset_dir(pathlib.Path(data_dir), dataset, config)
    try:
        builder = tfds.builder_from_directory(str(dataset_dir))
    except Exception as e:
        raise DataError(f"cannot read dataset info in {dataset_dir}: {e}") from e
    if builder.info.name != dataset:
        raise DataError(f"dataset at {dataset_dir} is {builder.info.name!r}, not {dataset!r}")
    t, h, w, _ = builder.info.features["video"].shape
    if (t, h, w) != (clip_len, frame_size, frame_size):
        raise DataError(
            f"dataset at {dataset_dir} has clips of {t} frames of {h}x{w} but the config asks "
            f"for {clip_len} frames of {frame_size}x{frame_size}"
        )
    if split not in builder.info.splits:
        raise DataError(
            f"dataset at {dataset_dir} has no split {split!r} "
            f"(it has {', '.join(builder.info.splits.keys())})"
        )
    return ClipSource(builder, split)


def open_config_split(config, split: str, data_dir: str | pathlib.Path | None = None) -> ClipSource:
    """`open_split` with the dataset, clip length and frame size a run's config names.

    `config.dataset` (default CoinRun) picks the dataset; `data_dir` overrides `config.data_dir`.
    """
    return open_split(
        data_dir or config.data_dir,
        split,
        clip_len=config.clip_len,
        frame_size=config.frame_size,
        dataset=config.get("dataset", DATASET_NAME),
    )
