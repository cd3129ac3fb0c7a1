"""From BabyAI records to WAM batches: words, frames, actions (hidden where unlabelled), length.

  words    int32 [B, L]            the mission's word ids (`Vocabulary`)
  video    uint8 [B, T, H, W, 3]
  actions  int32 [B, T]            a_t, or -1 where unknown: after the episode, and everywhere
                                   in an episode whose labels are hidden
  policy_actions int32 [B, T]      what the policy head learns at frame t: the expert's choice
                                   where the episode keeps its labels (differs from a_t only on
                                   expert-noise data, where a_t may be a random movement), else
                                   the same as `actions` (hidden or named)
  length   int32 [B]               valid frames
  targets  bool [B, T, N]          (with `patch_size`) the video tokens that overlap a cell
                                   holding an object the mission names (simulator knowledge
                                   for the auxiliary target loss; never hidden)

Label fraction (the study of learning from action-free video): only a fixed subset of the
training episodes keeps its actions. `labelled_episodes` picks `round(f * E)` of the `E`
episodes (at least one when f > 0) by a seeded permutation, so the 10% set is part of the 100%
set and the same for every run with that seed. Validation and test always keep their labels.
With named actions (`wam label`, `wam_jax/labelling.py`), a hidden episode's windows carry the
frozen labeller's actions instead of NO_LABEL.
"""

import grain
import numpy as np

from genie_jax.data.errors import DataError
from wam_jax.data.vocab import Vocabulary

NO_LABEL = -1


def cells_to_tokens(cells_TGG: np.ndarray, frame_size: int, patch_size: int) -> np.ndarray:
    """Bool [T, N]: a video token (a `patch_size` square of the frame, row-major) is a target
    when any grid cell it overlaps is one; the G x G grid tiles the frame exactly."""
    frames, grid = cells_TGG.shape[0], cells_TGG.shape[1]
    if frame_size % grid or frame_size % patch_size:
        raise DataError(
            f"a {grid}x{grid} grid and {patch_size}-pixel patches must both tile a "
            f"{frame_size}-pixel frame"
        )
    cell = frame_size // grid
    side = frame_size // patch_size
    pixels_TFF = np.repeat(np.repeat(cells_TGG > 0, cell, axis=1), cell, axis=2)
    patches = pixels_TFF.reshape(frames, side, patch_size, side, patch_size)
    return patches.any(axis=(2, 4)).reshape(frames, side * side)


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

    def __init__(
        self,
        vocab: Vocabulary,
        max_words: int,
        labelled: np.ndarray | None = None,
        patch_size: int | None = None,
        named_actions=None,
        ahead: bool = False,
    ):
        self._vocab = vocab
        self._max_words = max_words
        self._labelled = labelled  # None: every episode labelled
        self._patch_size = patch_size  # None: no `targets` field
        self._ahead = ahead  # False: no `ahead` field
        # `wam_jax.labelling.NamedActions`: a frozen labeller's actions, used where the real
        # ones are hidden (None: hidden actions stay NO_LABEL).
        self._named_actions = named_actions

    def map(self, element: dict) -> dict:
        actions = np.asarray(element["actions"], np.int32)
        # Data before version 1.2.0 has no expert choices: there the bot's choice was taken.
        policy_actions = np.asarray(element.get("expert_actions", actions), np.int32)
        if self._labelled is not None and not self._labelled[int(element["episode"])]:
            actions = np.full_like(actions, NO_LABEL)
            if self._named_actions is not None:
                named = self._named_actions.actions_for(element["episode"], element["clip_index"])
                actions = np.asarray(named, np.int32).copy()
            # Unlabelled video shows only what was done, never what the expert would have done.
            policy_actions = actions
        record = {
            "words": self._vocab.encode(element["mission"], self._max_words),
            "video": element["video"],
            "actions": actions,
            "policy_actions": policy_actions,
            "length": np.int32(element["length"]),
        }
        if self._patch_size is not None:
            if "targets" not in element:
                raise DataError(
                    "the target loss needs the `targets` field of BabyAI data version 1.1.0 or "
                    "later; rebuild the data with `wam data babyai`"
                )
            video = element["video"]
            record["targets"] = cells_to_tokens(
                np.asarray(element["targets"]), video.shape[1], self._patch_size
            )
        if self._ahead:
            if "ahead" not in element:
                raise DataError(
                    "the ahead loss needs the `ahead` field of BabyAI data version 1.6.0 or "
                    "later; rebuild the data with `wam data babyai`"
                )
            record["ahead"] = np.asarray(element["ahead"], np.int32)
        return record
