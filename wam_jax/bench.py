"""`wam bench train`: genie_jax's train-step benchmark (`genie_jax.bench.train`) on the WAM.

The WAM's task needs a trained tokenizer run and a vocabulary built from the dataset; the
benchmark needs neither: the tokenizer (and the LAM of the latent-action route) are randomly
initialized, never loaded, and without `config.data_dir` the instruction vocabulary is
`SYNTHETIC_WORDS` stand-in words. A step costs the same either way.
"""

import ml_collections
import numpy as np

from genie_jax.bench.train import BenchModel
from genie_jax.data.source import open_config_split
from wam_jax.data.babyai_env import AHEAD_CLASSES, NUM_ACTIONS
from wam_jax.system import NO_LABEL
from wam_jax.task import (
    ahead_field,
    check_stage,
    target_patch_size,
    task_for_system,
    train_operations,
    vocab_from_split,
    wam_system_from_config,
)

SYNTHETIC_WORDS = 32  # padding included; GoToLocal's missions use about 15 words


def wam_bench_model(config: ml_collections.ConfigDict) -> BenchModel:
    """The WAM task of a BabyAI config with random frozen parts, and its synthetic batch."""
    check_stage(config)
    max_words = config.wam.model.max_words
    operations = None
    if config.data_dir:  # the real vocabulary, so the pipeline's batches fit the step
        train_source = open_config_split(config, "train")
        vocab = vocab_from_split(train_source)
        system = wam_system_from_config(config, len(vocab))
        patch_size = target_patch_size(config, system, train_source)
        ahead = ahead_field(system, {config.data_dir: train_source})
        operations = train_operations(config, train_source, vocab, max_words, patch_size, ahead)
    else:
        system = wam_system_from_config(config, SYNTHETIC_WORDS)
    num_words = system.num_words
    task = task_for_system(config, system, train_operations=operations)
    frozen = " and ".join(task.frozen)
    notes = [f"{frozen} randomly initialized (no pretrained load)"]
    if not config.data_dir:
        notes.append(f"instruction vocabulary of {num_words} synthetic words")
    frames, size = config.clip_len, config.frame_size
    num_tokens = system.tokenizer_config.num_tokens

    def make_batch(batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        actions = rng.integers(0, NUM_ACTIONS, (batch_size, frames), dtype=np.int32)
        actions[:, -1] = NO_LABEL  # no action after the last frame
        batch = {
            "words": rng.integers(1, num_words, (batch_size, max_words), dtype=np.int32),
            "video": rng.integers(0, 256, (batch_size, frames, size, size, 3), dtype=np.uint8),
            "actions": actions,
            "length": np.full((batch_size,), frames, np.int32),
        }
        if system.wam_config.target_head:  # one target token a frame, as a mission's object
            target_BT = rng.integers(0, num_tokens, (batch_size, frames))
            batch["targets"] = np.arange(num_tokens) == target_BT[:, :, None]
        if system.wam_config.ahead_head:
            batch["ahead"] = rng.integers(0, len(AHEAD_CLASSES), (batch_size, frames), np.int32)
        return batch

    return BenchModel(
        task=task,
        frames=frames,
        tokens_per_frame=num_tokens,
        dtype=config.wam.model.dtype,
        make_batch=make_batch,
        notes=tuple(notes),
    )
