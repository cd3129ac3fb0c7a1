"""Named actions for unlabelled training video, from a frozen WAM's inverse dynamics.

The route from action-free video to a policy that VPT takes: an inverse-dynamics model,
trained on the few labelled episodes, names the action between every pair of frames of the
rest, and the policy learns from all of them. Here the labeller is a `wam train` run, queried
in its inverse-dynamics mode (every frame shown, every action slot hidden) and never trained
further: `wam label` names the actions of every stored training window once and saves them;
`config.wam.named_actions` makes a training run (BC or joint) read them for the windows whose
real actions are hidden (`wam_jax.data.pipeline.WAMRecord`).

The file (`.npz`), one row per stored window of the split:
  episode, clip_index  int64 [W]        which window the row is
  actions              int32 [W, T]     the named a_t; NO_LABEL where o_{t+1} is not in the
                                        window or the labeller's probability is under the
                                        threshold
  confidence           float32 [W, T]   the labeller's probability of its choice (0: no row)
  meta                 a JSON string: the labeller (step, its label fraction and seed), the
                       data (dataset, split, version), the threshold, and the
                       named actions' agreement with the actions stored in the data, which a
                       simulated dataset has for every episode (`agreement_unseen` on the
                       episodes whose actions the labeller's training hid), and the counts
                       behind it, `confusion_all` / `confusion_unseen` [R][R] (row: the stored
                       action, column: the named one): a rare action named wrong in a
                       systematic way hides in a high agreement and shows there.
"""

import dataclasses
import json
import os
import pathlib

import numpy as np

from genie_jax.config_loading import ConfigError
from genie_jax.data.errors import DataError
from wam_jax.data.pipeline import NO_LABEL, labelled_episodes


@dataclasses.dataclass
class NamedActions:
    episode_W: np.ndarray
    clip_index_W: np.ndarray
    actions_WT: np.ndarray
    confidence_WT: np.ndarray
    meta: dict

    def __post_init__(self):
        rows = len(self.episode_W)
        shapes = (self.clip_index_W.shape, self.actions_WT.shape[:1], self.confidence_WT.shape)
        if shapes != ((rows,), (rows,), self.actions_WT.shape):
            raise DataError(
                f"named actions with {rows} windows but clip indices {shapes[0]}, actions "
                f"{self.actions_WT.shape} and confidences {self.confidence_WT.shape}"
            )
        self._row = {
            (int(e), int(c)): i for i, (e, c) in enumerate(zip(self.episode_W, self.clip_index_W))
        }

    def __len__(self) -> int:
        return len(self.episode_W)

    def actions_for(self, episode: int, clip_index: int) -> np.ndarray:
        """The named a_t [T] of one stored window."""
        row = self._row.get((int(episode), int(clip_index)))
        if row is None:
            raise DataError(
                f"the named actions ({self.meta.get('data')}) have no "
                f"row for episode {episode}, window {clip_index}: name them again with "
                "`wam label` on this data"
            )
        return self.actions_WT[row]

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Writes the file (through a temporary name, so a reader never sees half of it)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez_compressed(
            partial,
            episode=self.episode_W,
            clip_index=self.clip_index_W,
            actions=self.actions_WT,
            confidence=self.confidence_WT,
            meta=np.array(json.dumps(self.meta)),
        )
        partial.replace(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NamedActions":
        path = pathlib.Path(path)
        if not path.is_file():
            raise ConfigError(f"named actions {path} not found: write them with `wam label`")
        try:
            with np.load(path) as data:
                return cls(
                    data["episode"],
                    data["clip_index"],
                    data["actions"].astype(np.int32),
                    data["confidence"].astype(np.float32),
                    json.loads(str(data["meta"])),
                )
        except (OSError, ValueError, KeyError) as error:
            raise DataError(
                f"named actions {path} cannot be read ({error}); write them again with `wam label`"
            ) from error


def name_split_actions(
    agent,
    source,
    *,
    split: str = "train",
    threshold: float = 0.0,
    pair_check: bool = False,
    batch_size: int = 64,
    progress=None,
) -> NamedActions:
    """Every stored window of `source` (the `split` of the agent's data) through `agent`'s
    inverse-dynamics query: the named actions (see the module docstring) and, in `meta`, their
    agreement with the stored ones. `pair_check`: each transition is also named from its two
    frames alone (`WAMAgent.infer_pair_probs`), and left unnamed where the two names differ
    (`meta["pair_check_hidden"]`: the share of transitions that hid)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    windows, frames = len(source), agent.config.clip_len
    episode_W = np.zeros(windows, np.int64)
    clip_index_W = np.zeros(windows, np.int64)
    actions_WT = np.full((windows, frames), NO_LABEL, np.int32)
    confidence_WT = np.zeros((windows, frames), np.float32)
    pair_hidden = transitions = 0
    stored_WT = np.full((windows, frames), NO_LABEL, np.int32)
    for start in range(0, windows, batch_size):
        rows = range(start, min(start + batch_size, windows))
        items = [source[i] for i in rows]
        video = np.stack([item["video"] for item in items])
        if video.shape[1] != frames:
            raise DataError(f"windows of {video.shape[1]} frames; the labeller reads {frames}")
        length_B = np.array([int(item["length"]) for item in items], np.int32)
        words = agent.encode_missions([item["mission"] for item in items])
        probs_BTR = agent.infer_action_probs(words, video, length_B)  # row t: a_t
        has_next_BT = np.arange(frames - 1)[None, :] < length_B[:, None] - 1
        transitions += int(has_next_BT.sum())
        keep_BT = has_next_BT & (probs_BTR.max(axis=-1) >= threshold)
        if pair_check:
            pairs_BT = pair_names(agent, words, video, has_next_BT, batch_size * (frames - 1))
            agree_BT = pairs_BT == probs_BTR.argmax(axis=-1)
            pair_hidden += int((keep_BT & ~agree_BT).sum())
            keep_BT &= agree_BT
        index = slice(rows.start, rows.stop)
        actions_WT[index, :-1] = np.where(keep_BT, probs_BTR.argmax(axis=-1), NO_LABEL)
        confidence_WT[index, :-1] = np.where(has_next_BT, probs_BTR.max(axis=-1), 0.0)
        stored_WT[index] = np.stack([np.asarray(item["actions"], np.int32) for item in items])
        episode_W[index] = [int(item["episode"]) for item in items]
        clip_index_W[index] = [int(item["clip_index"]) for item in items]
        if progress is not None:
            progress(rows.stop, windows)
    wam = agent.config.wam
    episodes = int(source.metadata["splits"][split]["episodes"])
    if wam.get("stage", "joint") == "pretrain":
        seen_E = np.zeros(episodes, bool)
    else:
        seen_E = labelled_episodes(episodes, wam.label_fraction, wam.label_seed)
    meta = {
        "labeller_step": agent.step,
        "labeller_label_fraction": 0.0 if not seen_E.any() else float(wam.label_fraction),
        "labeller_label_seed": int(wam.label_seed),
        "data": repr(source),
        "split": split,
        "dataset_version": source.version,
        "windows": windows,
        "threshold": threshold,
        "pair_check": pair_check,
        **({"pair_check_hidden": pair_hidden / max(transitions, 1)} if pair_check else {}),
        **agreement(actions_WT, stored_WT, seen_E[episode_W], agent.system.num_actions),
    }
    return NamedActions(episode_W, clip_index_W, actions_WT, confidence_WT, meta)


def pair_names(
    agent, words_BL: np.ndarray, video_BTHWC: np.ndarray, has_next_BT: np.ndarray, size: int
) -> np.ndarray:
    """[B, T-1]: the action each transition's two frames name alone (NO_LABEL where there is
    no next frame); the pairs of every window in one call, padded to `size` pairs (at least
    B * (T-1)) so that every call has one shape."""
    batch, steps = has_next_BT.shape
    rows_P, steps_P = np.nonzero(has_next_BT)
    pairs_P2HWC = np.zeros((size, 2) + video_BTHWC.shape[2:], np.uint8)
    pairs_P2HWC[: len(rows_P), 0] = video_BTHWC[rows_P, steps_P]
    pairs_P2HWC[: len(rows_P), 1] = video_BTHWC[rows_P, steps_P + 1]
    words_PL = np.zeros((size,) + words_BL.shape[1:], words_BL.dtype)
    words_PL[: len(rows_P)] = words_BL[rows_P]
    named_P = agent.infer_pair_probs(words_PL, pairs_P2HWC).argmax(axis=-1)
    names_BT = np.full((batch, steps), NO_LABEL, np.int32)
    names_BT[rows_P, steps_P] = named_P[: len(rows_P)]
    return names_BT


def agreement(
    named_WT: np.ndarray, stored_WT: np.ndarray, seen_W: np.ndarray, num_actions: int
) -> dict:
    """How the named actions compare with the stored ones: the share of stored transitions
    named, the share of named ones equal to the stored action, and the confusion counts
    [num_actions][num_actions] (row stored, column named), over all windows and over the
    windows of episodes the labeller never saw labelled (`seen_W` False)."""
    out = {}
    for name, rows in (("all", np.ones_like(seen_W, bool)), ("unseen", ~seen_W)):
        stored = stored_WT[rows]
        named = named_WT[rows]
        known = stored >= 0
        given = known & (named >= 0)
        out[f"named_share_{name}"] = float(given.sum() / max(known.sum(), 1))
        out[f"agreement_{name}"] = float((given & (named == stored)).sum() / max(given.sum(), 1))
        confusion_RR = np.zeros((num_actions, num_actions), np.int64)
        np.add.at(confusion_RR, (stored[given], named[given]), 1)
        out[f"confusion_{name}"] = confusion_RR.tolist()
    return out


def check_named_actions(named: NamedActions, config, train_windows: int) -> None:
    """Refuses named actions that do not fit the run: other data, or a labeller that saw
    labels this run hides (its labelled episodes must be among the run's)."""
    meta = named.meta
    if len(named) != train_windows:
        raise ConfigError(
            f"config.wam.named_actions holds {len(named)} windows ({meta.get('data')}), "
            f"but the training split of {config.data_dir} has {train_windows}: name the "
            "actions of this data with `wam label`"
        )
    if named.actions_WT.shape[1] != config.clip_len:
        raise ConfigError(
            f"config.wam.named_actions has windows of {named.actions_WT.shape[1]} frames, this "
            f"run reads {config.clip_len} (config.clip_len)"
        )
    fraction = float(meta.get("labeller_label_fraction", 1.0))
    section = config.wam
    run_fraction = 0.0 if section.stage == "pretrain" else float(section.label_fraction)
    same_plan = fraction == 0.0 or (
        int(meta.get("labeller_label_seed", -1)) == int(section.label_seed)
        and fraction <= run_fraction
    )
    if not same_plan:
        raise ConfigError(
            f"config.wam.named_actions comes from a labeller trained on {fraction:.0%} of the "
            f"labels (label_seed {meta.get('labeller_label_seed')}), more than this run keeps "
            f"({run_fraction:.0%}, label_seed {section.label_seed}): it saw labels this run "
            "hides"
        )
