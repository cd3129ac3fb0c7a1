"""From BabyAI records to WAM batches: words, frames, actions (hidden where unlabelled), length.

  words    int32 [B, L]            the mission's word ids (`Vocabulary`)
  video    uint8 [B, T, H, W, 3]
  actions  int32 [B, T]            a_t, or -1 where unknown: after the episode, and everywhere
                                   in an episode whose labels are hidden
  length   int32 [B]               valid frames

Label fraction (the study of learning from action-free video): only a fixed subset of the
training episodes keeps its actions. `labelled_episodes` picks `round(f * E)` of the `E`
episodes (at least one when f > 0) by a seeded permutation, so the 10% set is part of the 100%
set and the same for every run with that seed. Validation and test always keep their labels.
"""

import grain
import numpy as np

from wam_jax.data.vocab import Vocabulary

NO_LABEL = -1


def labelled_episodes(num_episodes: int, fraction: float, seed: int) -> np.ndarray:
    """Bool [num_episodes]: which episodes keep their action labels."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label fraction must be in [0, 1], got {fraction}")
    count = int(round(fraction * num_episodes))
    if fraction > 0:
        count = max(count, 1)
    order = np.random.default_rng(seed).permutation(num_episodes)
    keep = np.zeros(num_episodes, bool)
    keep[order[:count]] = True
    return keep


class WAMRecord(grain.transforms.Map):
    """One stored window -> the WAM's fields; actions hidden where the episode is unlabelled."""

    def __init__(self, vocab: Vocabulary, max_words: int, labelled: np.ndarray | None = None):
        self._vocab = vocab
        self._max_words = max_words
        self._labelled = labelled  # None: every episode labelled

    def map(self, element: dict) -> dict:
        actions = np.asarray(element["actions"], np.int32)
        if self._labelled is not None and not self._labelled[int(element["episode"])]:
            actions = np.full_like(actions, NO_LABEL)
        return {
            "words": self._vocab.encode(element["mission"], self._max_words),
            "video": element["video"],
            "actions": actions,
            "length": np.int32(element["length"]),
        }
