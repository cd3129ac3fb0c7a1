"""Building a TFDS dataset once: reuse a finished build, refuse one made with other settings.

Shared by the CoinRun builder and the packages that write their own clip datasets (BabyAI).
"""

import pathlib
import shutil

import numpy as np
import tensorflow_datasets as tfds

from genie_jax.data.errors import DataError


def clip_features(clip_len: int, frame_size: int) -> dict[str, tfds.features.FeatureConnector]:
    """The fields every clip dataset shares: `video` uint8 [T, S, S, 3] (zlib: frames compress
    several-fold and decode without TensorFlow) and `actions` int32 [T]."""
    return {
        "video": tfds.features.Tensor(
            shape=(clip_len, frame_size, frame_size, 3), dtype=np.uint8, encoding="zlib"
        ),
        "actions": tfds.features.Tensor(shape=(clip_len,), dtype=np.int32, encoding="bytes"),
    }


def build_once(
    builder: tfds.core.DatasetBuilder,
    out_dir: str | pathlib.Path,
    wanted: dict,
    settings: tuple[str, ...],
    name: str,
) -> pathlib.Path:
    """Runs `builder.download_and_prepare()` unless its directory already holds a finished
    build; returns the dataset directory.

    A finished build whose metadata differs from `wanted` in any of `settings` raises
    `DataError` (nothing is overwritten). A build that died midway leaves only an
    `incomplete.*` directory, which readers reject and this removes before building again.
    """
    dataset_dir = pathlib.Path(builder.data_dir)
    if (dataset_dir / "dataset_info.json").exists():
        # Reading the info back needs no registration, so an old build can be checked as is.
        found = dict(tfds.builder_from_directory(str(dataset_dir)).info.metadata or {})
        differ = [
            f"{k} {found.get(k)} not {wanted[k]}" for k in settings if found.get(k) != wanted[k]
        ]
        if differ:
            raise DataError(
                f"dataset at {dataset_dir} was built with other settings ({'; '.join(differ)}); "
                "use another out_dir or delete it"
            )
        print(f"{name} dataset already built at {dataset_dir}")
        return dataset_dir
    for stale in dataset_dir.parent.glob("incomplete.*"):
        # Left by a killed build. TFDS would ignore it, but it may hold gigabytes.
        print(f"removing unfinished build {stale}")
        shutil.rmtree(stale)
    builder.download_and_prepare()
    # TFDS creates an (empty) download cache even though nothing is downloaded.
    downloads = pathlib.Path(out_dir) / "downloads"
    for empty in (downloads / "extracted", downloads):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return dataset_dir
