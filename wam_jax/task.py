"""The WAM as a `genie_jax.train` task: model, steps, data operations and pretrained parts.

The loop, sharding, checkpoints and resumption are genie_jax's; this file only says what is
trained. The instruction vocabulary is built from the training missions on a fresh start and
saved as `vocab.json` in the workdir; a resumed run (and evaluation) reads it back.
"""

import functools
import os

import jax.numpy as jnp
import ml_collections
from etils import epath

from genie_jax.config_loading import ConfigError
from genie_jax.data.source import open_config_split
from genie_jax.lam import LAMConfig
from genie_jax.tokenizer import TokenizerConfig
from genie_jax.train.tasks import Task, dataclass_from_config
from genie_jax.train.workdir import workdir_path
from wam_jax.config import WAMConfig
from wam_jax.data.aggregate import AggregatedSource
from wam_jax.data.babyai_env import NUM_ACTIONS
from wam_jax.data.balance import LabelBalancedView
from wam_jax.data.pipeline import WAMRecord, labelled_episodes
from wam_jax.data.vocab import Vocabulary
from wam_jax.labelling import NamedActions, check_named_actions
from wam_jax.run_start import run_start, write_start
from wam_jax.steps import wam_eval_step, wam_train_step
from wam_jax.system import WAMSystem

STAGES = ("joint", "pretrain", "align")
VOCAB_FILE = "vocab.json"
# Options a run may add to the backbone of its `init_workdir` run: their modules start from
# their initialization (the auxiliary heads beside the policy; the grid convolution, zero at
# initialization, leaves the loaded model's outputs as they were).
ADDABLE_MODULES = ("target_head", "ahead_head", "grid_conv")


def load_or_build_vocab(
    workdir: epath.Path, train_source, init_workdir: str | os.PathLike = ""
) -> Vocabulary:
    """The run's saved vocabulary; on a fresh start from another WAM run (`init_workdir`), that
    run's (its word embeddings are indexed by it); else a new one from every training mission."""
    path = workdir / VOCAB_FILE
    if path.exists():
        return Vocabulary.load(path)
    if init_workdir:
        init_path = workdir_path(init_workdir) / VOCAB_FILE
        if not init_path.exists():
            raise ConfigError(
                f"config.wam.init_workdir={init_workdir} holds no {VOCAB_FILE}: it must be a "
                "`wam train` run"
            )
        return Vocabulary.load(init_path)
    return vocab_from_split(train_source)


def vocab_from_split(train_source) -> Vocabulary:
    """A new vocabulary from every mission of the training split."""
    return Vocabulary.from_missions(train_source[i]["mission"] for i in range(len(train_source)))


def wam_system_from_config(config: ml_collections.ConfigDict, num_words: int) -> WAMSystem:
    tokenizer = dataclass_from_config(TokenizerConfig, config.tokenizer.model)
    lam = None
    if config.lam_workdir or config.wam.stage == "pretrain":
        lam = dataclass_from_config(LAMConfig, config.lam.model)
    wam = dataclass_from_config(WAMConfig, config.wam.model)
    if config.clip_len > wam.max_frames:
        raise ConfigError(
            f"config.clip_len={config.clip_len} exceeds wam max_frames={wam.max_frames}"
        )
    if tokenizer.frame_size != config.frame_size:
        raise ConfigError(
            f"the tokenizer was configured for {tokenizer.frame_size}x{tokenizer.frame_size} "
            f"frames but config.frame_size={config.frame_size}"
        )
    return WAMSystem(tokenizer, lam, wam, num_actions=NUM_ACTIONS, num_words=num_words)


def _train_labels(config: ml_collections.ConfigDict, train_source):
    """Which training episodes keep their actions (None: all of them)."""
    section = config.wam
    episodes = int(train_source.metadata["splits"]["train"]["episodes"])
    if section.stage == "pretrain":
        return labelled_episodes(episodes, 0.0, section.label_seed)
    if every_label_known(section):
        return None
    return labelled_episodes(episodes, section.label_fraction, section.label_seed)


def every_label_known(section: ml_collections.ConfigDict) -> bool:
    """True where every training episode keeps its actions (pretraining hides them all)."""
    return section.stage != "pretrain" and section.get("label_fraction", 0.0) >= 1.0


def check_stage(config: ml_collections.ConfigDict) -> None:
    section = config.wam
    if section.stage not in STAGES:
        raise ConfigError(f"config.wam.stage={section.stage!r} is not one of {STAGES}")


def task_for_system(
    config: ml_collections.ConfigDict,
    system: WAMSystem,
    *,
    train_operations: tuple | None = None,
    eval_operations: tuple | None = None,
    pretrained: dict | None = None,
    train_source_view=None,
    object_word_ids: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
) -> Task:
    """The WAM's steps, example inputs and frozen parts for `system` (the loss settings of
    `config.wam`: joint training or behaviour cloning)."""
    section = config.wam
    mode_probs = tuple(system.wam_config.mode_probs)
    video_weight, slot_weight = section.video_loss_weight, 1.0
    if section.behaviour_cloning:
        # The policy head alone (slot_weight 0: no inverse dynamics), past actions shown as
        # in closed loop; frames after the policy mode's cut add nothing without a video loss.
        mode_probs, video_weight, slot_weight = (0.0, 1.0, 0.0), 0.0, 0.0
    target_weight = section.get("target_loss_weight", 1.0) if system.wam_config.target_head else 0.0
    ahead_weight = section.get("ahead_loss_weight", 1.0) if system.wam_config.ahead_head else 0.0
    if target_weight < 0 or ahead_weight < 0:
        raise ConfigError(
            f"config.wam.target_loss_weight={target_weight} and ahead_loss_weight="
            f"{ahead_weight} must be >= 0"
        )
    policy_weight = section.get("policy_loss_weight", 1.0)
    if policy_weight < 0:
        raise ConfigError(f"config.wam.policy_loss_weight={policy_weight} must be >= 0")
    pseudo_weight = section.get("pseudo_label_weight", 0.0)
    pseudo_threshold = section.get("pseudo_label_threshold", 0.9)
    if pseudo_weight < 0 or not 0.0 <= pseudo_threshold <= 1.0:
        raise ConfigError(
            f"config.wam.pseudo_label_weight={pseudo_weight} must be >= 0 and "
            f"pseudo_label_threshold={pseudo_threshold} in [0, 1]"
        )
    if section.behaviour_cloning and pseudo_weight:
        raise ConfigError(
            "config.wam.pseudo_label_weight > 0 with behaviour_cloning: the baseline reads the "
            "labelled episodes only, so it has no unlabelled clip to name"
        )
    if every_label_known(section):
        pseudo_weight = 0.0  # every action is known: the extra inverse pass could name none
    contrast_share = section.get("mission_contrast_share", 0.0)
    contrast_weight = section.get("mission_contrast_weight", 1.0)
    if not 0.0 <= contrast_share <= 1.0 or contrast_weight < 0:
        raise ConfigError(
            f"config.wam.mission_contrast_share={contrast_share} must be in [0, 1] and "
            f"mission_contrast_weight={contrast_weight} >= 0"
        )
    if contrast_share > 0 and not system.wam_config.ahead_head:
        raise ConfigError(
            "config.wam.mission_contrast_share > 0 needs config.wam.model.ahead_head: the "
            "contrast's labels are the cell-ahead classes the ahead head's data carries"
        )
    if contrast_share > 0 and not object_word_ids[1]:
        raise ConfigError(
            "config.wam.mission_contrast_share > 0, but the vocabulary names no object type "
            "(ball, box, key, door): no two missions can be told apart"
        )
    num_tokens = system.tokenizer_config.num_tokens
    size = config.frame_size
    frames = config.clip_len
    example = (
        jnp.zeros((1, system.wam_config.max_words), jnp.int32),
        jnp.zeros((1, frames, size, size, 3), jnp.float32),
        jnp.zeros((1, frames), jnp.int32),
        jnp.ones((1,), jnp.int32),
        jnp.zeros((1, frames, num_tokens), bool),
        jnp.zeros((1, frames), bool),
    )
    return Task(
        name="wam",
        model=system,
        example_inputs=example,
        train_step=functools.partial(
            wam_train_step,
            num_tokens=num_tokens,
            mode_probs=mode_probs,
            min_mask_rate=system.wam_config.min_mask_rate,
            max_mask_rate=system.wam_config.max_mask_rate,
            action_loss_weight=section.action_loss_weight,
            video_loss_weight=video_weight,
            slot_loss_weight=slot_weight,
            policy_loss_weight=policy_weight,
            target_loss_weight=target_weight,
            ahead_loss_weight=ahead_weight,
            pseudo_label_weight=pseudo_weight,
            pseudo_label_threshold=pseudo_threshold,
            mission_contrast_share=contrast_share,
            mission_contrast_weight=contrast_weight,
            object_word_ids=object_word_ids,
        ),
        eval_step=functools.partial(
            wam_eval_step,
            num_tokens=num_tokens,
            action_loss_weight=section.action_loss_weight,
            video_loss_weight=video_weight,
            slot_loss_weight=slot_weight,
            policy_loss_weight=policy_weight,
            target_loss_weight=target_weight,
            ahead_loss_weight=ahead_weight,
            pseudo_label_threshold=pseudo_threshold,
            object_word_ids=object_word_ids,
        ),
        section=section,
        frozen=("tokenizer", "lam") if system.lam_config is not None else ("tokenizer",),
        pretrained=pretrained or {},
        train_operations=train_operations,
        eval_operations=eval_operations,
        train_source_view=train_source_view,
    )


def target_patch_size(config: ml_collections.ConfigDict, system: WAMSystem, source) -> int | None:
    """The tokenizer's patch size when the WAM has a target head (its batches then carry
    `targets`), else None; data without the `targets` field is refused here."""
    if not system.wam_config.target_head:
        return None
    if "targets" not in source.fields:
        raise ConfigError(
            f"config.wam.model.target_head needs data with `targets` (BabyAI version 1.1.0 or "
            f"later); {config.data_dir} holds version {source.version}: rebuild it "
            "with `wam data babyai`"
        )
    return system.tokenizer_config.patch_size


def ahead_field(system: WAMSystem, sources: dict) -> bool:
    """Whether the WAM's batches carry `ahead` (it has an ahead head); a source of `sources`
    ({data directory: training split}) without the field (data before 1.6.0, an on-policy
    build included) is refused here."""
    if not system.wam_config.ahead_head:
        return False
    for data_dir, source in sources.items():
        if "ahead" not in source.fields:
            raise ConfigError(
                f"config.wam.model.ahead_head needs data with `ahead` (BabyAI version 1.6.0 or "
                f"later); {data_dir} holds version {source.version}: rebuild it with "
                "`wam data babyai`"
            )
    return True


def train_operations(
    config: ml_collections.ConfigDict,
    train_source,
    vocab: Vocabulary,
    max_words: int,
    patch_size: int | None = None,
    ahead: bool = False,
) -> tuple:
    """grain operations from stored training windows to WAM batches (labels hidden outside
    the labelled fraction; the BC baseline reads a view of the labelled episodes only, see
    `label_balancing`)."""
    labels = _train_labels(config, train_source)
    named = named_actions_for_run(config, train_source)
    record = WAMRecord(
        vocab, max_words, labels, patch_size=patch_size, named_actions=named, ahead=ahead
    )
    return (record,)


def named_actions_for_run(config: ml_collections.ConfigDict, train_source):
    """The frozen labeller's actions of `config.wam.named_actions` (None when unset), checked
    against the run: its data, its label plan and its other options."""
    section = config.wam
    path = section.get("named_actions", "")
    if not path:
        return None
    if section.stage == "pretrain" or every_label_known(section):
        raise ConfigError(
            f"config.wam.named_actions with stage={section.stage} and "
            f"label_fraction={section.label_fraction}: no hidden action would be named"
        )
    if section.get("pseudo_label_weight", 0.0):
        raise ConfigError(
            "config.wam.named_actions with pseudo_label_weight > 0: every hidden action is "
            "named already, so the pseudo-label pass would find none to name"
        )
    named = NamedActions.load(path)
    check_named_actions(named, config, len(train_source))
    return named


def label_balancing(config: ml_collections.ConfigDict, train_source):
    """The train split's view with `config.wam.labelled_share` of labelled windows; for the
    BC baseline, the labelled windows only. None (the split as it is) where every window is
    labelled or named (`config.wam.named_actions`), or, outside BC, where none is or the share
    is 0."""
    share = config.wam.get("labelled_share", 0.0)
    labels = _train_labels(config, train_source)
    if config.wam.get("named_actions", ""):
        return None  # every window carries actions: real or named
    if config.wam.behaviour_cloning:
        if labels is None:
            return None
        if not labels.any():
            raise ConfigError("behaviour cloning needs labelled episodes; this run has none")
        share = 1.0
    elif not share or labels is None or not labels.any():
        return None
    return functools.partial(LabelBalancedView, labelled_episodes=labels, share=share)


def on_policy_source(config: ml_collections.ConfigDict, train_source, vocab: Vocabulary):
    """The training split of `config.wam.on_policy_data_dir` (None when unset): a policy's
    episodes labelled by the expert (`wam data babyai --actor`), checked against the run."""
    section = config.wam
    path = section.get("on_policy_data_dir", "")
    if not path:
        return None
    if not every_label_known(section):
        raise ConfigError(
            f"config.wam.on_policy_data_dir with stage={section.stage} and label_fraction="
            f"{section.label_fraction}: the expert labels every state the policy reached, so "
            "on-policy data belongs to runs that keep every label (label_fraction=1.0)"
        )
    source = open_config_split(config, "train", data_dir=path)
    played, expert = source.metadata, train_source.metadata
    if not played.get("actor"):
        raise ConfigError(
            f"config.wam.on_policy_data_dir={path} holds the expert's episodes, not a policy's: "
            "build it with `wam data babyai --actor W`"
        )
    if played.get("level") != expert.get("level"):
        raise ConfigError(
            f"config.wam.on_policy_data_dir={path} was played on {played.get('level')}, "
            f"config.data_dir on {expert.get('level')}"
        )
    played_seeds = played["splits"]["train"]
    for split in ("validation", "test"):
        held_out = expert["splits"][split]
        if (
            played_seeds["seed_start"] < held_out["seed_stop"]
            and held_out["seed_start"] < played_seeds["seed_stop"]
        ):
            raise ConfigError(
                f"config.wam.on_policy_data_dir={path} trains on env seeds "
                f"{played_seeds['seed_start']}:{played_seeds['seed_stop']}, which meet the "
                f"{split} seeds {held_out['seed_start']}:{held_out['seed_stop']} of "
                "config.data_dir: build it on training seeds only"
            )
    max_words = config.wam.model.max_words
    for mission in {source[i]["mission"] for i in range(len(source))}:
        vocab.encode(mission, max_words)  # an unknown word is named here, not mid-training
    return source


def wam_task(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike
) -> tuple[Task, Vocabulary]:
    """The task for `genie_jax.train.loop.train`, and the vocabulary to save with the run."""
    section = config.wam
    check_stage(config)
    if not config.tokenizer_workdir:
        raise ConfigError(
            "config.tokenizer_workdir is empty: pass a `genie train tokenizer` run on BabyAI"
        )
    if section.stage in ("pretrain", "align") and not config.lam_workdir:
        raise ConfigError(
            f"config.wam.stage={section.stage} needs config.lam_workdir (a BabyAI LAM run): "
            "the latent-action route labels unlabelled clips with the LAM in both stages"
        )
    if section.stage == "align" and not section.init_workdir:
        raise ConfigError("config.wam.stage=align needs config.wam.init_workdir (a pretrain run)")
    if section.stage == "pretrain" and section.init_workdir:
        raise ConfigError(
            "config.wam.init_workdir with stage=pretrain: pretraining starts from scratch "
            "(init_workdir is for the joint and align stages)"
        )
    train_source = open_config_split(config, "train")
    vocab = load_or_build_vocab(workdir_path(workdir), train_source, section.init_workdir)
    system = wam_system_from_config(config, len(vocab))
    max_words = system.wam_config.max_words
    patch_size = target_patch_size(config, system, train_source)
    on_policy = on_policy_source(config, train_source, vocab)
    sources = {config.data_dir: train_source}
    if on_policy is not None:
        sources[section.on_policy_data_dir] = on_policy
    ahead = ahead_field(system, sources)
    view = label_balancing(config, train_source)
    if on_policy is not None:
        # Every label is known here (on_policy_source), so there is no balancing view.
        view = functools.partial(AggregatedSource, on_policy=on_policy)
    pretrained: dict = {"tokenizer": config.tokenizer_workdir}
    if config.lam_workdir:
        pretrained["lam"] = config.lam_workdir
    start = run_start(workdir, section.init_workdir, section.get("init_step", -1))
    if start is not None:
        # Align: from a pretrain run. Joint or BC: from any WAM run of the same backbone (e.g.
        # the joint WAM started from the BC baseline's weights), with or without the
        # ADDABLE_MODULES; from its checkpoint `init_step` (newest when negative).
        pretrained["wam"] = (section.init_workdir, "wam", ADDABLE_MODULES, start["init_step"])
    task = task_for_system(
        config,
        system,
        train_operations=train_operations(
            config, train_source, vocab, max_words, patch_size, ahead
        ),
        eval_operations=(WAMRecord(vocab, max_words, patch_size=patch_size, ahead=ahead),),
        pretrained=pretrained,
        train_source_view=view,
        object_word_ids=vocab.object_word_ids(),
    )
    return task, vocab


def train_wam(config: ml_collections.ConfigDict, workdir: str | os.PathLike, **kwargs) -> dict:
    """`genie_jax`'s loop on the WAM task; writes `vocab.json` next to the checkpoints, and
    `start.json` (`wam_jax/run_start.py`) for a run from another's weights."""
    from genie_jax.train.loop import train

    workdir = workdir_path(workdir)
    task, vocab = wam_task(config, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / VOCAB_FILE).exists():
        vocab.save(workdir / VOCAB_FILE)
    section = config.wam
    write_start(workdir, run_start(workdir, section.init_workdir, section.get("init_step", -1)))
    return train(config, workdir, task, **kwargs)
