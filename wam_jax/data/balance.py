"""Label-balanced training windows: a fixed share of every epoch from labelled episodes.

With 10% of the episodes labelled, a plain shuffle gives the WAM about one labelled window in
ten, while the behaviour-cloning baseline (which keeps the labelled episodes only) sees nothing
else: at equal steps the WAM's action heads get ten times fewer examples. `LabelBalancedView`
repeats the labelled windows (cyclically, each as evenly as the count allows) until they make
up `share` of the windows of an epoch; every unlabelled window still appears exactly once. The
grain sampler then shuffles the view as it would the split, so the share holds per epoch and,
in expectation, per batch; the data order stays a function of the seed and resumes exactly.

A share at or below the split's own labelled share, or a split with no labelled or no
unlabelled window, leaves the split as it is. Share 1 is the behaviour-cloning baseline's view:
the labelled windows only, each once (an index, so a 1% run reads its 1% and nothing else,
where a filter would decode and drop 99 windows for every one it keeps).
"""

import numpy as np


def labelled_windows(source, labelled_episodes: np.ndarray) -> np.ndarray:
    """Bool [len(source)]: which stored windows belong to a labelled episode.

    Reads every record once (the window's `episode` field; about 0.3 ms a window, the zlib
    video included)."""
    episodes = np.array([int(source[i]["episode"]) for i in range(len(source))], np.int64)
    if len(episodes) and episodes.max() >= len(labelled_episodes):
        raise ValueError(
            f"{source!r} holds episode {episodes.max()} but the label plan covers "
            f"{len(labelled_episodes)} episodes"
        )
    return labelled_episodes[episodes]


def balanced_index(labelled_window: np.ndarray, share: float) -> np.ndarray:
    """Indices into the split: every unlabelled window once, labelled ones repeated to `share`
    (share 1: each labelled window once, nothing else)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"labelled share must be in [0, 1], got {share}")
    labelled = np.flatnonzero(labelled_window)
    unlabelled = np.flatnonzero(~labelled_window)
    if share == 1.0:
        if not len(labelled):
            raise ValueError("labelled share 1 asks for labelled windows only; there are none")
        return labelled
    natural = len(labelled) / max(len(labelled_window), 1)
    if not len(labelled) or not len(unlabelled) or share <= natural:
        return np.arange(len(labelled_window))
    # L / (U + L) = share  <=>  L = share / (1 - share) * U
    count = int(np.ceil(share / (1.0 - share) * len(unlabelled)))
    repeated = labelled[np.arange(count) % len(labelled)]
    return np.concatenate([unlabelled, repeated])


class LabelBalancedView:
    """Random access over a training split where labelled windows make up at least `share`."""

    def __init__(self, source, labelled_episodes: np.ndarray, share: float):
        self._source = source
        self._share = share
        self.metadata = getattr(source, "metadata", {})
        self.labelled_window = labelled_windows(source, labelled_episodes)
        self._index = balanced_index(self.labelled_window, share)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> dict:
        return self._source[int(self._index[index])]

    @property
    def labelled_share(self) -> float:
        """The share of this view's windows that come from labelled episodes."""
        return float(self.labelled_window[self._index].mean()) if len(self._index) else 0.0

    def __repr__(self) -> str:
        # grain compares this string when it restores an iterator: it names the split, the
        # share and the size, so a resumed run reads the same view.
        return f"LabelBalancedView({self._source!r}, share={self._share}, {len(self)} records)"
