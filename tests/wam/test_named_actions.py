"""Named actions (`wam_jax/labelling.py`) without a model: the file, the lookup, the agreement
figures and the checks against a run (the model-backed `wam label` is in
test_wam_pipeline.py)."""

import types

import numpy as np
import pytest

from genie_jax.config_loading import ConfigError
from genie_jax.data.errors import DataError
from wam_jax.data.pipeline import NO_LABEL
from wam_jax.labelling import NamedActions, agreement, check_named_actions


def _named(**meta) -> NamedActions:
    return NamedActions(
        episode_W=np.array([0, 0, 1]),
        clip_index_W=np.array([0, 1, 0]),
        actions_WT=np.array(
            [[2, 0, NO_LABEL], [1, NO_LABEL, NO_LABEL], [6, 2, NO_LABEL]], np.int32
        ),
        confidence_WT=np.array([[0.9, 0.5, 0], [0.7, 0, 0], [0.4, 0.8, 0]], np.float32),
        meta={"data": "babyai[train]", **meta},
    )


def test_file_round_trip_and_lookup(tmp_path):
    named = _named(labeller_label_fraction=0.1)
    path = named.save(tmp_path / "sub" / "named.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["named.npz"]  # no partial left
    back = NamedActions.load(path)
    np.testing.assert_array_equal(back.actions_WT, named.actions_WT)
    np.testing.assert_array_equal(back.confidence_WT, named.confidence_WT)
    assert back.meta == named.meta
    np.testing.assert_array_equal(back.actions_for(0, 1), [1, NO_LABEL, NO_LABEL])
    np.testing.assert_array_equal(back.actions_for(1, 0), [6, 2, NO_LABEL])
    with pytest.raises(DataError, match="no row for episode 1, window 1"):
        back.actions_for(1, 1)


def test_missing_corrupt_and_ragged_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="not found: write them with `wam label`"):
        NamedActions.load(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="bad.npz cannot be read"):
        NamedActions.load(bad)
    with pytest.raises(DataError, match="3 windows but clip indices"):
        NamedActions(
            np.zeros(3, np.int64),
            np.zeros(2, np.int64),
            np.zeros((3, 4), np.int32),
            np.zeros((3, 4), np.float32),
            {},
        )


def test_agreement_counts_by_hand():
    stored = np.array([[2, 0, 1, NO_LABEL], [3, 3, NO_LABEL, NO_LABEL]], np.int32)
    named = np.array([[2, 1, NO_LABEL, NO_LABEL], [3, 3, NO_LABEL, NO_LABEL]], np.int32)
    out = agreement(named, stored, seen_W=np.array([False, True]), num_actions=4)
    # All: 5 stored transitions, 4 named, 3 of them equal; unseen (row 0): 3, 2 named, 1 equal.
    # Confusion (row stored, column named): 2->2, 0->1 (the one wrong name), 3->3 twice.
    assert out == {
        "named_share_all": 4 / 5,
        "agreement_all": 3 / 4,
        "confusion_all": [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 2]],
        "named_share_unseen": 2 / 3,
        "agreement_unseen": 1 / 2,
        "confusion_unseen": [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]],
    }


def _run(fraction=0.1, seed=0, stage="joint", clip_len=3):
    wam = types.SimpleNamespace(label_fraction=fraction, label_seed=seed, stage=stage)
    return types.SimpleNamespace(wam=wam, clip_len=clip_len, data_dir="D")


def test_a_labeller_that_saw_hidden_labels_or_other_data_is_refused():
    named = _named(labeller_label_fraction=0.1, labeller_label_seed=0)
    check_named_actions(named, _run(), train_windows=3)  # the same plan: accepted
    check_named_actions(named, _run(fraction=0.5), train_windows=3)  # a subset: accepted
    unlabelled = _named(labeller_label_fraction=0.0, labeller_label_seed=7)
    check_named_actions(unlabelled, _run(fraction=0.01), train_windows=3)
    with pytest.raises(ConfigError, match="trained on 10% of the labels .* more than this run"):
        check_named_actions(named, _run(fraction=0.01), train_windows=3)
    with pytest.raises(ConfigError, match="label_seed 0.*label_seed 1"):
        check_named_actions(named, _run(seed=1), train_windows=3)
    with pytest.raises(ConfigError, match="holds 3 windows .* has 4"):
        check_named_actions(named, _run(), train_windows=4)
    with pytest.raises(ConfigError, match="windows of 3 frames, this run reads 8"):
        check_named_actions(named, _run(clip_len=8), train_windows=3)


def test_study_table_names_runs_that_read_named_actions():
    from wam_jax.study_table import run_kind

    plain = {"behaviour_cloning": True, "stage": "joint"}
    assert run_kind(plain) == "bc"
    assert run_kind({**plain, "named_actions": "RUN/named.npz"}) == "bc + named"
    assert run_kind({"behaviour_cloning": False, "stage": "align", "named_actions": ""}) == (
        "wam (align)"
    )
