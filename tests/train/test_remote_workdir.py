"""Workdirs on an object store: `gs://bucket/...` mapped onto a local directory.

`etils.epath.testing.mock_epath` swaps epath's backends, so every file operation on a
`gs://bucket/` path lands under `tmp_path / "bucket"` while the code under test still sees (and
builds) the URI. The fake bucket also refuses what an object store cannot do: opening an object
to append.

Not covered: an orbax save or restore of arrays on `gs://`. Orbax writes and reads arrays through
tensorstore, which talks to GCS itself instead of going through epath, so no mock here can
redirect it (offline it waits for credentials). What is checked instead is that the Checkpointer
hands orbax the URI intact, that orbax lists the steps of checkpoints written locally into the
fake bucket through it, and that an unreadable step is set aside there by copy and delete.
"""

import json
import os
import pathlib
import types

import jax.numpy as jnp
import ml_collections
import pytest
from etils.epath.testing import mock_epath

from genie_jax.train import loop
from genie_jax.train.checkpoint import (
    CORRUPT_DIR,
    Checkpointer,
    CheckpointNotFoundError,
    resolved_step,
    step_dirs,
)
from genie_jax.train.checkpoint_info import checkpoint_info, config_hash
from genie_jax.train.logging import create_writer
from genie_jax.train.workdir import absolute_path, is_remote, workdir_path
from wam_jax.data.vocab import Vocabulary
from wam_jax.task import VOCAB_FILE, load_or_build_vocab

BUCKET = "gs://bucket/"
RUN = BUCKET + "run"


class FakeBucket:
    """`gs://bucket/` as the local directory `root`; records how gs:// paths were opened and
    renamed."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.opened: list[tuple[str, str]] = []
        self.renamed: list[str] = []

    def local(self, path) -> str:
        path = os.fspath(path)
        return str(self.root / path.removeprefix(BUCKET)) if path.startswith(BUCKET) else path

    def mocks(self) -> dict:
        def forward(original, path, *args, **kwargs):
            return original(self.local(path), *args, **kwargs)

        def forward_two(original, path, target, **kwargs):
            return original(self.local(path), self.local(target), **kwargs)

        def open_(original, path, mode):
            if os.fspath(path).startswith(BUCKET):
                self.opened.append((os.fspath(path), mode))
                assert "a" not in mode, f"{path} opened with mode {mode!r}: objects cannot append"
            return original(self.local(path), mode)

        def rename(original, path, target):
            if os.fspath(path).startswith(BUCKET):
                self.renamed.append(os.fspath(path))
            return original(self.local(path), self.local(target))

        def glob(original, pattern):
            found = original(self.local(pattern))
            if not os.fspath(pattern).startswith(BUCKET):
                return found
            return [BUCKET + os.path.relpath(f, self.root) for f in found]

        plain = ("exists", "isdir", "listdir", "makedirs", "mkdir", "remove", "rmtree", "stat")
        return {
            **{name: forward for name in plain},
            "open": open_,
            "rename": rename,
            "replace": forward_two,
            "copy": forward_two,
            "glob": glob,
        }


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    # Orbax asks the bucket itself (google-cloud-storage, over the network) whether it has a
    # hierarchical namespace before it lists steps; this fake one has none.
    from orbax.checkpoint._src.path import gcs_utils

    monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
    fake = FakeBucket(tmp_path / "bucket")
    fake.root.mkdir()
    with mock_epath(**fake.mocks()):
        yield fake


def test_paths_keep_the_uri_and_local_paths_stay_as_they_were(tmp_path, monkeypatch):
    assert str(pathlib.Path(RUN)) == "gs:/bucket/run"  # the bug: pathlib folds the `//`
    assert str(workdir_path(RUN) / "checkpoints") == RUN + "/checkpoints"
    assert str(absolute_path(RUN) / "checkpoints") == RUN + "/checkpoints"
    assert is_remote(RUN) and is_remote(workdir_path(RUN))
    monkeypatch.chdir(tmp_path)
    assert str(workdir_path("runs/a")) == "runs/a" and not is_remote("runs/a")
    assert absolute_path("runs/a") == tmp_path / "runs/a"
    checkpointer = Checkpointer("runs/a/checkpoints")
    assert checkpointer.directory == tmp_path / "runs/a/checkpoints"
    checkpointer.close()


def test_remote_metrics_are_rewritten_whole_and_survive_a_restart(bucket):
    writer = create_writer(RUN)
    writer.write_scalars(1, {"train/loss": 1.0})
    writer.write_scalars(2, {"train/loss": float("nan")})
    metrics = bucket.root / "run/metrics.jsonl"
    assert not metrics.exists()  # nothing reaches the object before a flush
    writer.flush()
    assert [json.loads(r)["step"] for r in metrics.read_text().splitlines()] == [1, 2]
    writer.write_scalars(3, {"val/loss": 0.5})
    writer.close()
    # The run restarts (a resume): the new writer starts from the object's rows.
    writer = create_writer(RUN)
    writer.write_scalars(4, {"train/loss": 0.25})
    writer.close()
    rows = [json.loads(r) for r in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["train/loss"] is None and rows[3]["train/loss"] == 0.25
    assert ("gs://bucket/run/metrics.jsonl", "w") in bucket.opened
    # TensorBoard: one event file per writer, copied into the bucket.
    events = sorted((bucket.root / "run/tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 2 and all(e.stat().st_size > 0 for e in events)


def test_local_metrics_still_append_line_by_line(tmp_path):
    writer = create_writer(tmp_path)
    writer.write_scalars(1, {"train/loss": 1.0})
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1  # line-buffered
    writer.close()
    writer = create_writer(tmp_path)
    writer.write_scalars(2, {"train/loss": 0.5})
    writer.close()
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_config_and_vocabulary_on_a_remote_workdir(bucket):
    config = ml_collections.ConfigDict({"data_dir": "/data", "seed": 3, "tokenizer": {"d": 16}})
    loop.write_config(config, workdir_path(RUN))
    assert json.loads((bucket.root / "run/config.json").read_text())["seed"] == 3
    local = bucket.root / "local"
    local.mkdir()
    (local / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
    assert config_hash(workdir_path(RUN)) == config_hash(workdir_path(local))
    assert config_hash(workdir_path(BUCKET + "missing")) is None

    vocab = Vocabulary.from_missions(["go to the red ball", "pick up the blue key"])
    vocab.save(f"{RUN}/{VOCAB_FILE}")
    assert (bucket.root / "run" / VOCAB_FILE).is_file()
    assert Vocabulary.load(f"{RUN}/{VOCAB_FILE}").words == vocab.words
    # A resumed run reads the saved vocabulary back instead of building a new one.
    assert load_or_build_vocab(workdir_path(RUN), train_source=None).words == vocab.words


def test_steps_and_checkpoint_info_on_a_remote_workdir(bucket):
    for name in ("3", "10", "10.orbax-checkpoint-tmp-1"):
        (bucket.root / "run/checkpoints" / name).mkdir(parents=True)
    assert step_dirs(RUN + "/checkpoints") == [3, 10]
    assert resolved_step(RUN, None) == 10 and resolved_step(RUN, 3) == 3
    with pytest.raises(CheckpointNotFoundError, match=r"no checkpoint at step 4 \(it has 3, 10\)"):
        resolved_step(RUN, 4)
    with pytest.raises(CheckpointNotFoundError, match="holds no checkpoint"):
        resolved_step(BUCKET + "other", None)
    assert step_dirs(BUCKET + "other/checkpoints") == []
    # The error names the URI as given, not a local `gs:/` directory.
    with pytest.raises(CheckpointNotFoundError, match="in gs://bucket/other$"):
        checkpoint_info(BUCKET + "other")


def _fake_state(step: int) -> types.SimpleNamespace:
    """What `Checkpointer.save` reads of a TrainState."""
    return types.SimpleNamespace(
        step=jnp.int32(step),
        params={"w": jnp.full(2, float(step))},
        opt_state={"m": jnp.zeros(2)},
        model_state={"b": jnp.zeros(1)},
    )


def test_checkpointer_lists_and_sets_aside_remote_steps(bucket):
    # Steps written by orbax to the directory that stands for the bucket (a local save).
    local = Checkpointer(bucket.root / "run/checkpoints", async_save=False)
    for step in (1, 2):
        local.save(_fake_state(step))
    local.close()
    saved = sorted(
        p.relative_to(bucket.root / "run/checkpoints/2").as_posix()
        for p in (bucket.root / "run/checkpoints/2").rglob("*")
        if p.is_file()
    )

    remote = Checkpointer(RUN + "/checkpoints", async_save=False)
    assert str(remote.directory) == RUN + "/checkpoints"
    assert str(remote._manager.directory) == RUN + "/checkpoints"
    assert remote.all_steps() == [1, 2] and remote.latest_step() == 2
    remote._set_aside([2])
    assert remote.all_steps() == [1]
    assert not (bucket.root / "run/checkpoints/2").exists()
    (aside,) = (bucket.root / "run" / CORRUPT_DIR).iterdir()
    assert aside.name.startswith("2.")
    moved = sorted(p.relative_to(aside).as_posix() for p in aside.rglob("*") if p.is_file())
    assert moved == saved and saved
    assert bucket.renamed == []  # copied and deleted: an object store has no directory rename
    remote.close()


class _RecordingWriter:
    """Wraps the loop's writer and records the order of its calls."""

    def __init__(self, writer, events: list):
        self._writer, self.events = writer, events

    def write_scalars(self, step, scalars):
        self.events.append(("write", step, next(iter(scalars)).split("/")[0]))
        self._writer.write_scalars(step, scalars)

    def flush(self):
        self.events.append(("flush",))
        self._writer.flush()

    def close(self):
        self.events.append(("close",))
        self._writer.close()


def test_loop_flushes_at_eval_and_checkpoint_and_closes_on_divergence(
    tiny_config, tmp_path, monkeypatch
):
    events: list = []
    monkeypatch.setattr(
        loop, "create_writer", lambda workdir: _RecordingWriter(create_writer(workdir), events)
    )
    # Eval and checkpoint at step 3, stopped (and saved) at step 4.
    loop.train(tiny_config(), tmp_path, "tokenizer", stop_at_step=4)
    val_at_3, train_at_4 = events.index(("write", 3, "val")), events.index(("write", 4, "train"))
    assert ("flush",) in events[val_at_3:train_at_4]
    assert events[-1] == ("close",)
    events.clear()
    blown = tiny_config(**{"tokenizer.optimizer.learning_rate": 1e30})
    with pytest.raises(loop.TrainingDivergedError):
        loop.train(blown, tmp_path, "tokenizer")
    assert events[-1] == ("close",)  # the rows before the divergence reach the workdir
