"""grain pipelines over the test CoinRun dataset: batches, determinism, resume, bad input."""

import itertools
import os
import pathlib
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genie_jax.data import DataError, pipeline

SHAPES = {"clip_len": 8, "frame_size": 64}


def _train(data_dir, seed: int = 0, batch: int = 4, **kwargs):
    return pipeline.make_train_iterator(
        data_dir, global_batch_size=batch, seed=seed, **SHAPES, **kwargs
    )


def _take(iterator, n: int) -> list[dict[str, np.ndarray]]:
    return list(itertools.islice(iterator, n))


def _assert_same_batches(a: list[dict], b: list[dict]):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_train_batches_have_model_fields_only(coinrun_dir):
    batch = next(_train(coinrun_dir))
    assert set(batch) == {"video", "actions"}
    assert batch["video"].shape == (4, 8, 64, 64, 3) and batch["video"].dtype == np.uint8
    assert batch["actions"].shape == (4, 8) and batch["actions"].dtype == np.int32


def test_train_order_depends_only_on_seed(coinrun_dir):
    _assert_same_batches(
        _take(_train(coinrun_dir, seed=7), 3), _take(_train(coinrun_dir, seed=7), 3)
    )
    first_a, first_b = next(_train(coinrun_dir, seed=7)), next(_train(coinrun_dir, seed=8))
    assert not np.array_equal(first_a["video"], first_b["video"])


def test_train_repeats_past_one_epoch(coinrun_dir):
    # 40 train clips in batches of 8: five per epoch; later epochs are new permutations.
    batches = _take(_train(coinrun_dir, batch=8), 12)
    assert len(batches) == 12
    epoch_0 = np.concatenate([b["actions"] for b in batches[:5]])
    epoch_1 = np.concatenate([b["actions"] for b in batches[5:10]])
    assert {r.tobytes() for r in epoch_0} == {r.tobytes() for r in epoch_1}
    assert not np.array_equal(epoch_0, epoch_1)


def test_eval_is_one_unshuffled_pass(coinrun_dir):
    def run():
        return list(pipeline.make_eval_iterator(coinrun_dir, global_batch_size=4, **SHAPES))

    batches = run()
    assert len(batches) == 2  # 10 validation clips: two full batches, the remainder dropped
    _assert_same_batches(batches, run())
    source = pipeline.open_split(coinrun_dir, "validation", **SHAPES)
    np.testing.assert_array_equal(batches[0]["video"][1], source[1]["video"])


def test_iterator_state_round_trips_through_orbax(coinrun_dir, tmp_path):
    iterator = _train(coinrun_dir)
    _take(iterator, 8)  # 10 batches per epoch, so the batches compared below cross an epoch
    options = ocp.CheckpointManagerOptions(max_to_keep=1)
    with ocp.CheckpointManager(tmp_path / "ckpt", options=options) as mngr:
        mngr.save(
            8,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave({"step": np.array(8)}),
                data=pipeline.iterator_save_args(iterator),
            ),
        )
        mngr.wait_until_finished()
    expected = _take(iterator, 4)

    fresh = _train(coinrun_dir)
    with ocp.CheckpointManager(tmp_path / "ckpt", options=options) as mngr:
        restored = mngr.restore(
            mngr.latest_step(),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore({"step": np.array(0)}),
                data=pipeline.iterator_restore_args(fresh),
            ),
        )
    assert int(restored["state"]["step"]) == 8
    _assert_same_batches(_take(restored["data"], 4), expected)


def test_decoding_in_a_worker_process_gives_the_same_batches(coinrun_dir):
    _assert_same_batches(
        _take(_train(coinrun_dir, worker_count=1), 2), _take(_train(coinrun_dir), 2)
    )


def test_to_global_batch_shards_over_the_mesh(coinrun_dir):
    assert jax.device_count() == 8
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
    local = next(_train(coinrun_dir, batch=8))

    arrays = pipeline.to_global_batch(local, batch_sharding)
    for key, array in arrays.items():
        assert isinstance(array, jax.Array)
        assert array.sharding == batch_sharding
        assert len(array.addressable_shards) == 8
        assert array.addressable_shards[0].data.shape[0] == 1
        np.testing.assert_array_equal(np.asarray(array), local[key])

    replicated = NamedSharding(mesh, PartitionSpec())
    arrays = pipeline.to_global_batch(local, {"video": batch_sharding, "actions": replicated})
    assert arrays["actions"].sharding == replicated


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _train(tmp_path / "nowhere")


def test_empty_data_dir(tmp_path):
    with pytest.raises(DataError, match="holds no coinrun_clips dataset"):
        _train(tmp_path)


def test_wrong_clip_len(coinrun_dir):
    with pytest.raises(
        DataError, match="has clips of 8 frames of 64x64 but the config asks for 16"
    ):
        pipeline.make_train_iterator(
            coinrun_dir, global_batch_size=4, seed=0, clip_len=16, frame_size=64
        )


def test_wrong_frame_size(coinrun_dir):
    with pytest.raises(DataError, match="asks for 8 frames of 32x32"):
        pipeline.make_train_iterator(
            coinrun_dir, global_batch_size=4, seed=0, clip_len=8, frame_size=32
        )


def test_missing_split(coinrun_dir):
    with pytest.raises(DataError, match="has no split 'dev'"):
        pipeline.open_split(coinrun_dir, "dev", **SHAPES)


def test_batch_not_divisible_by_processes(coinrun_dir, monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    with pytest.raises(DataError, match="not divisible by the 3 JAX processes"):
        _train(coinrun_dir, batch=8)


def test_split_smaller_than_a_batch(coinrun_dir):
    with pytest.raises(DataError, match="fewer than one batch"):
        pipeline.make_eval_iterator(coinrun_dir, global_batch_size=16, **SHAPES)


def test_corrupt_record_names_file_and_record(coinrun_dir, tmp_path):
    copy = tmp_path / "corrupt"
    shutil.copytree(coinrun_dir, copy)
    (train_file,) = pathlib.Path(copy).glob("coinrun_clips/clip8/1.0.0/*-train.array_record*")
    size = train_file.stat().st_size
    with open(train_file, "r+b") as f:
        f.seek(size // 2)
        f.write(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())

    source = pipeline.open_split(copy, "train", **SHAPES)
    with pytest.raises(DataError, match=rf"corrupt record \d+ of {train_file}") as info:
        for i in range(len(source)):
            source[i]
    assert "\n" not in str(info.value)
    # The error also surfaces through the grain pipeline's reader threads.
    with pytest.raises(DataError, match="corrupt record"):
        list(pipeline.make_eval_iterator(copy, "train", global_batch_size=4, **SHAPES))


def test_xla_flags_give_eight_devices():
    assert "--xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")


def test_several_builds_and_none_matching_is_an_error(tmp_path):
    from genie_jax.data import build_coinrun

    for clip_len in (4, 5):
        build_coinrun(tmp_path, episodes=3, clip_len=clip_len, max_steps=10)
    with pytest.raises(DataError, match="several coinrun_clips builds.*clip4, clip5"):
        pipeline.open_split(tmp_path, "train", clip_len=8, frame_size=64)
    # The wanted one among several is found.
    assert len(pipeline.open_split(tmp_path, "train", clip_len=5, frame_size=64)) > 0


def test_other_dataset_name_is_checked(coinrun_dir):
    with pytest.raises(DataError, match="holds no babyai_episodes dataset"):
        pipeline.open_split(coinrun_dir, "train", dataset="babyai_episodes", **SHAPES)
    dataset_dir = next(pathlib.Path(coinrun_dir).glob("coinrun_clips/*/*"))
    with pytest.raises(DataError, match="is 'coinrun_clips', not 'babyai_episodes'"):
        pipeline.open_split(dataset_dir, "train", dataset="babyai_episodes", **SHAPES)
