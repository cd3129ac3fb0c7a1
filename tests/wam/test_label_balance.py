"""Label-balanced sampling: labelled windows repeated to a fixed share of every epoch."""

import numpy as np
import pytest

from wam_jax.data.balance import LabelBalancedView, balanced_index


def test_share_is_met_and_every_unlabelled_window_appears_once():
    labelled = np.zeros(100, bool)
    labelled[[3, 40, 77]] = True
    index = balanced_index(labelled, 0.5)
    unlabelled = np.flatnonzero(~labelled)
    assert np.array_equal(np.sort(index[~labelled[index]]), unlabelled)
    assert labelled[index].sum() == 97  # 0.5 / (1 - 0.5) * 97 unlabelled
    counts = np.bincount(index[labelled[index]], minlength=100)[[3, 40, 77]]
    assert counts.max() - counts.min() <= 1  # repeated as evenly as the count allows


@pytest.mark.parametrize("share", [0.1, 0.25, 0.9])
def test_share_is_exact_up_to_one_window(share):
    labelled = np.arange(1000) % 50 == 0  # 2% labelled
    index = balanced_index(labelled, share)
    assert abs(labelled[index].mean() - share) < 1.0 / len(index) + 1e-12


def test_natural_share_or_one_kind_only_leaves_the_split_alone():
    half = np.arange(10) % 2 == 0
    assert np.array_equal(balanced_index(half, 0.3), np.arange(10))  # already above 0.3
    assert np.array_equal(balanced_index(np.zeros(10, bool), 0.5), np.arange(10))
    assert np.array_equal(balanced_index(np.ones(10, bool), 0.5), np.arange(10))
    with pytest.raises(ValueError, match="labelled share"):
        balanced_index(half, 1.5)


def test_share_one_is_the_labelled_windows_once():
    labelled = np.arange(20) % 7 == 3
    assert np.array_equal(balanced_index(labelled, 1.0), [3, 10, 17])
    with pytest.raises(ValueError, match="none"):
        balanced_index(np.zeros(5, bool), 1.0)


class _Windows:
    """Six windows of episodes 0, 0, 1, 2, 2, 3."""

    metadata = {"splits": {}}

    def __init__(self):
        self.episodes = [0, 0, 1, 2, 2, 3]

    def __len__(self):
        return len(self.episodes)

    def __getitem__(self, i):
        return {"episode": np.int64(self.episodes[i]), "i": i}

    def __repr__(self):
        return "Windows(6)"


def test_view_maps_into_the_split_and_names_itself():
    view = LabelBalancedView(
        _Windows(), labelled_episodes=np.array([False, True, False, False]), share=0.5
    )
    assert np.array_equal(view.labelled_window, [False, False, True, False, False, False])
    assert len(view) == 10 and view.labelled_share == 0.5
    assert [view[i]["i"] for i in range(len(view))].count(2) == 5
    assert "share=0.5" in repr(view) and "Windows(6)" in repr(view)
    with pytest.raises(ValueError, match="label plan covers 2 episodes"):
        LabelBalancedView(_Windows(), labelled_episodes=np.array([True, False]), share=0.5)
