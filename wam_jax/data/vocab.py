"""Word-level instruction vocabulary, built from the training missions, saved with the run.

BabyAI missions are short sentences over a closed vocabulary ("go to the red ball", "pick up
the blue key on your left"). Words are lower-cased and split on spaces and punctuation. Id 0 is
padding; the other ids follow the sorted word list, so the same missions always give the same
vocabulary. A word the vocabulary lacks is an error that names it: a policy given an
instruction it has never read should not guess.
"""

import json
import os
import re
from collections.abc import Iterable

import numpy as np

from genie_jax.train.workdir import workdir_path

PAD_ID = 0
_WORD = re.compile(r"[a-z0-9]+")
# The words BabyAI missions name an object with (minigrid's COLOR_NAMES and the object
# types a mission can name).
OBJECT_COLORS = ("red", "green", "blue", "purple", "yellow", "grey")
OBJECT_TYPES = ("ball", "box", "key", "door")


class UnknownWordError(ValueError):
    pass


def split_words(mission: str | bytes) -> list[str]:
    if isinstance(mission, bytes):
        mission = mission.decode("utf-8")
    return _WORD.findall(mission.lower())


class Vocabulary:
    def __init__(self, words: Iterable[str]):
        self.words = sorted(set(words))
        self._ids = {w: i + 1 for i, w in enumerate(self.words)}

    @classmethod
    def from_missions(cls, missions: Iterable[str | bytes]) -> "Vocabulary":
        return cls(w for m in missions for w in split_words(m))

    def __len__(self) -> int:
        """Ids in use, padding included: the embedding table's size."""
        return len(self.words) + 1

    def object_word_ids(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(colour ids, object-type ids) among this vocabulary's words: what a mission says
        of the object it names (`wam_jax/mission_contrast.py`)."""
        colors = tuple(self._ids[w] for w in OBJECT_COLORS if w in self._ids)
        types = tuple(self._ids[w] for w in OBJECT_TYPES if w in self._ids)
        return colors, types

    def encode(self, mission: str | bytes, max_words: int) -> np.ndarray:
        """Word ids [max_words], padded with PAD_ID."""
        words = split_words(mission)
        unknown = [w for w in words if w not in self._ids]
        if unknown:
            raise UnknownWordError(
                f"instruction {mission!r} has words the model never saw in training: "
                f"{', '.join(repr(w) for w in unknown)} (vocabulary: {' '.join(self.words)})"
            )
        if len(words) > max_words:
            raise ValueError(
                f"instruction {mission!r} has {len(words)} words; the model reads at most "
                f"{max_words} (config wam.model.max_words)"
            )
        ids = np.full(max_words, PAD_ID, np.int32)
        ids[: len(words)] = [self._ids[w] for w in words]
        return ids

    def save(self, path: str | os.PathLike) -> None:
        """Writes the word list to `path`, on disk or on an object store (`gs://...`)."""
        workdir_path(path).write_text(json.dumps({"words": self.words}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        return cls(json.loads(workdir_path(path).read_text())["words"])
