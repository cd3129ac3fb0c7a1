"""The CoinRun TFDS build: split plan, content on disk, idempotent and crash-safe builds."""

import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from genie_jax.data import DataError, build_coinrun
from genie_jax.data.coinrun_builder import plan_splits
from genie_jax.data.source import open_split

SPLITS = ("train", "validation", "test")


def _read_all(data_dir, split: str, clip_len: int = 8) -> list[dict]:
    source = open_split(data_dir, split, clip_len=clip_len, frame_size=64)
    return [source[i] for i in range(len(source))]


def _dataset_dir(data_dir) -> pathlib.Path:
    return pathlib.Path(data_dir) / "coinrun_clips" / "clip8" / "1.0.0"


def test_plan_splits_divides_seeds_and_episodes():
    plans = plan_splits(8, (0, 10000))
    assert [plans[s].episodes for s in SPLITS] == [6, 1, 1]
    assert [(plans[s].seed_start, plans[s].seed_stop) for s in SPLITS] == [
        (0, 8000),
        (8000, 9000),
        (9000, 10000),
    ]
    # Fewer seeds than episodes: the split cycles through its own seeds, never a neighbour's.
    small = plan_splits(30, (100, 110))
    train_seeds = {spec.level_seed for spec in small["train"].specs()}
    assert train_seeds == set(range(100, 108))


@pytest.mark.parametrize(
    "episodes, level_seeds, phrase",
    [
        (2, (0, 100), "each of train, validation, test needs at least one"),
        (10, (5, 5), "at least 3 seeds"),
        (10, (10, 0), "at least 3 seeds"),
        (10, (-4, 100), "non-negative"),
    ],
)
def test_bad_build_arguments(tmp_path, episodes, level_seeds, phrase):
    with pytest.raises(DataError, match=phrase):
        build_coinrun(tmp_path, episodes=episodes, level_seeds=level_seeds, clip_len=8)


def test_bad_clip_len(tmp_path):
    with pytest.raises(DataError, match="clip_len <= max_steps"):
        build_coinrun(tmp_path, episodes=3, clip_len=100, max_steps=50)


def test_splits_use_disjoint_declared_level_seeds(coinrun_dir):
    source = open_split(coinrun_dir, "train", clip_len=8, frame_size=64)
    declared = source.metadata["splits"]
    seeds = {}
    for split in SPLITS:
        records = _read_all(coinrun_dir, split)
        assert records, split
        seeds[split] = {int(r["level_seed"]) for r in records}
        start, stop = declared[split]["seed_start"], declared[split]["seed_stop"]
        assert all(start <= s < stop for s in seeds[split]), split
        assert len({int(r["episode"]) for r in records}) == declared[split]["episodes"]
    assert not seeds["train"] & seeds["validation"]
    assert not seeds["train"] & seeds["test"]
    assert not seeds["validation"] & seeds["test"]


def test_records_hold_real_frames_and_valid_actions(coinrun_dir):
    for record in _read_all(coinrun_dir, "train"):
        video_THWC = record["video"]
        assert video_THWC.shape == (8, 64, 64, 3) and video_THWC.dtype == np.uint8
        assert video_THWC.std() > 10  # rendered levels, not constant frames
        assert record["actions"].dtype == np.int32 and record["actions"].shape == (8,)
        assert record["actions"].min() >= 0 and record["actions"].max() < 15


def test_rebuilding_a_finished_dataset_does_nothing(coinrun_dir, coinrun_settings, capsys):
    info = _dataset_dir(coinrun_dir) / "dataset_info.json"
    mtime = info.stat().st_mtime_ns
    start = time.monotonic()
    assert build_coinrun(coinrun_dir, **coinrun_settings) == _dataset_dir(coinrun_dir)
    assert time.monotonic() - start < 2.0
    assert info.stat().st_mtime_ns == mtime
    assert "already built" in capsys.readouterr().out


def test_rebuilding_with_other_settings_is_refused(coinrun_dir, coinrun_settings):
    settings = dict(coinrun_settings, max_steps=coinrun_settings["max_steps"] + 1)
    with pytest.raises(DataError, match="built with other settings"):
        build_coinrun(coinrun_dir, **settings)


_SLOW_BUILD = (
    "from genie_jax.data import build_coinrun\n"
    "build_coinrun({out!r}, episodes=5000, clip_len=8, max_steps=1000)\n"
)


def test_killed_build_is_rejected_then_rebuilt(tmp_path, coinrun_dir, coinrun_settings):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_BUILD.format(out=str(out))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("coinrun_clips/clip8/incomplete.*")):
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build never started writing"
            time.sleep(0.1)
        time.sleep(1.0)  # well into playing episodes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    with pytest.raises(DataError, match="unfinished coinrun_clips build"):
        open_split(out, "train", clip_len=8, frame_size=64)

    # The rebuild runs on two worker processes and must match the one-process build exactly.
    build_coinrun(out, **coinrun_settings, workers=2)
    assert not list(out.glob("coinrun_clips/clip8/incomplete.*"))
    for split in SPLITS:
        rebuilt, reference = _read_all(out, split), _read_all(coinrun_dir, split)
        assert len(rebuilt) == len(reference)
        for a, b in zip(rebuilt, reference, strict=True):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
