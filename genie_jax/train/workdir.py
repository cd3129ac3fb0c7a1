"""A run's workdir as a path that may be a directory on disk or an object-store URI.

`pathlib.Path("gs://bucket/run")` collapses the `//` into `gs:/bucket/run`, a local directory
nobody asked for. `etils.epath.Path` keeps the URI and reaches it through TensorFlow's gfile when
TensorFlow is installed, else through fsspec (`gcsfs` for `gs://`: the `gcs` extra,
`uv sync --extra gcs`); a local path goes through `os` and `open` as before. Orbax takes the
same `epath.Path` and writes its arrays to the bucket itself (through tensorstore; it also needs
google-cloud-storage, which the `gcs` extra brings, to list a bucket's checkpoints).

Object stores differ from disks in two ways the writers of a workdir must respect:
- an object cannot be appended to: `metrics.jsonl` is rewritten whole on each flush there
  (`genie_jax.train.logging`), and TensorBoard writes locally and copies its event files;
- renaming a directory copies every object and then deletes the originals, which is neither
  atomic nor cheap: only the rare set-aside of an unreadable checkpoint moves a directory
  (`move_directory`).
Every place that turns a workdir string into a path, or asks whether it is remote, calls here.
"""

import os

from etils import epath


def workdir_path(value: str | os.PathLike) -> epath.Path:
    """`value` as a path that keeps a `scheme://` prefix (relative local paths stay relative)."""
    return epath.Path(value)


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` names an object store (`gs://`, `s3://`, ...) rather than the local disk.

    A local path never holds `://`: epath, like pathlib, folds repeated slashes into one.
    """
    return "://" in os.fspath(workdir_path(path))


def absolute_path(value: str | os.PathLike) -> epath.Path:
    """`workdir_path(value)`, made absolute when it is local; a URI is absolute already (and
    `absolute()` would prefix it with the current directory)."""
    path = workdir_path(value)
    return path if is_remote(path) else path.absolute()


def move_directory(source: epath.Path, target: epath.Path) -> None:
    """Moves the directory `source` to `target` (which must not exist).

    On disk, one `os.rename` as always. On an object store, every object is copied under
    `target` and then `source` is deleted: that is all a rename is there, done here so it does
    not depend on `target`'s parent "existing" (an object store has no empty folders, and
    fsspec's rename checks for one).
    """
    if not is_remote(source):
        os.rename(source, target)
        return
    for file in _files_under(source):
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        file.copy(destination)
    source.rmtree()


def _files_under(directory: epath.Path):
    """Every file below `directory`. Listed by `iterdir`, which keeps the scheme on every
    backend (fsspec's `walk` hands back paths without it)."""
    for child in directory.iterdir():
        if child.is_dir():
            yield from _files_under(child)
        else:
            yield child
