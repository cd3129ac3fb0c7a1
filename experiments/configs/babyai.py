"""BabyAI configs for the World Action Model, as `get_config("variant")`.

Variants:
  smoke           a few minutes on 2 CPU cores: small tokenizer, LAM and WAM on GoToLocal.
  cpu             the same sizes trained longer (the label-fraction study on this machine).
  smoke_labeller  the smoke WAM set up as a labeller for `wam label` (the VPT route): learned
  cpu_labeller    positions, no target head, half of the masks inverse dynamics (see
                  `_as_labeller`); the tokenizer, data and label plan of the base variant.

Usage (the tokenizer and LAM are genie_jax runs on BabyAI frames; the WAM reads them):
  wam data babyai --out DATA --level BabyAI-GoToLocal-v0 --episodes 1000 --clip-len 8
  genie train tokenizer --config experiments/configs/babyai.py:smoke \
      --config.data_dir DATA --workdir RUN/tokenizer
  genie train lam --config experiments/configs/babyai.py:smoke \
      --config.data_dir DATA --workdir RUN/lam
  wam train --config experiments/configs/babyai.py:smoke --config.data_dir DATA \
      --config.tokenizer_workdir RUN/tokenizer --workdir RUN/wam [--config.wam.label_fraction=0.1]
"""

import dataclasses

import ml_collections

from genie_jax.lam import LAMConfig
from genie_jax.tokenizer import TokenizerConfig
from wam_jax.config import WAMConfig

BASE_VARIANTS = ("smoke", "cpu")
VARIANTS = (*BASE_VARIANTS, *(f"{base}_labeller" for base in BASE_VARIANTS))
STEPS = {
    "smoke": {"tokenizer": 2_000, "lam": 200, "wam": 600},
    "cpu": {"tokenizer": 3_000, "lam": 1_000, "wam": 3_000},
}


def _section(model, num_steps: int, batch_size: int, **extra) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "model": dataclasses.asdict(model),
            "optimizer": {
                "learning_rate": 1e-3,
                "warmup_steps": 50,
                "b1": 0.9,
                "b2": 0.99,
                "weight_decay": 1e-4,
                "grad_clip": 1.0,
                "end_learning_rate_ratio": 0.1,
            },
            "num_steps": num_steps,
            "batch_size": batch_size,
            **extra,
        }
    )


def get_config(variant: str = "smoke") -> ml_collections.ConfigDict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown babyai config variant {variant!r}; choose from {VARIANTS}")
    base, _, role = variant.partition("_")
    steps = STEPS[base]
    config = ml_collections.ConfigDict()
    config.variant = variant
    config.dataset = "babyai_episodes"  # written by `wam data babyai`
    config.data_dir = ""
    config.level = "BabyAI-GoToLocal-v0"  # the level closed-loop evaluation plays
    config.clip_len = 8  # frames per stored window (bot episodes: about 6 frames)
    config.frame_size = 64  # 8x8 grid, 8 pixels a cell, full view
    config.seed = 0
    config.data_workers = 0
    config.mesh_shape = (-1, 1, 1)
    config.log_every = 20
    config.eval_every = 200
    config.eval_batches = 2
    config.checkpoint_every = 200
    config.max_to_keep = 2
    # True: a step whose loss or new parameters are NaN/Inf keeps the previous state (counted
    # in train/skipped_updates) instead of stopping the run.
    config.skip_nonfinite_updates = False
    # Flat-coloured 8-pixel cells: patch 8 gives one token per cell (64 a frame).
    tokenizer = TokenizerConfig(
        patch_size=8,
        max_frames=16,
        encoder_layers=2,
        encoder_dim=96,
        encoder_heads=4,
        decoder_layers=2,
        decoder_dim=96,
        decoder_heads=4,
        codebook_size=64,
        latent_dim=8,
    )
    # Measured on 1000 GoToLocal episodes (clip 8), 2 CPU cores, about 5 steps/s: validation
    # PSNR 24.3 / 36.3 / 57.3 dB at 500 / 1000 / 2000 steps with these settings (256 codes,
    # latent 16, lr 1e-3 and reset after 20 idle steps gave 22.0 dB at 400 steps, using 10% of
    # the codes). The frames are flat 8-pixel cells: the tokenizer becomes near lossless once it
    # separates the few cell kinds.
    config.tokenizer = _section(tokenizer, steps["tokenizer"], batch_size=8, dead_code_threshold=5)
    config.tokenizer.optimizer.learning_rate = 2e-3
    lam = LAMConfig(
        patch_size=16,
        encoder_layers=2,
        encoder_dim=96,
        encoder_heads=4,
        decoder_layers=2,
        decoder_dim=96,
        decoder_heads=4,
        num_actions=8,  # BabyAI has 7 actions; Genie's default codebook of 8
    )
    config.lam = _section(lam, steps["lam"], batch_size=8, dead_code_threshold=20)
    # Rotary grid positions and the target head: the first options that made a policy read its
    # mission (RESULTS.md, "Grounding is easy; relative geometry is what the policies miss").
    # Frames are tokenized as whole clips: per-frame tokens kept the action heads at the
    # action prior (NOTES, "#5 next"). The grid convolution and the ahead head: what lets a
    # policy see the cell in front of it (RESULTS.md, "Teaching the cell ahead": BC at 100%
    # labels 97.9% on 1000 test seeds at T 1.0 with them, 92.0% without at equal steps on 200).
    # `WAMConfig`'s own defaults keep these off (they need a square token grid and data with
    # target cells and, for the ahead head, data 1.6.0).
    wam = WAMConfig(
        num_layers=3,
        dim=128,
        num_heads=4,
        max_frames=16,
        max_words=12,
        spatial_positions="rope",
        target_head=True,
        grid_conv=True,
        ahead_head=True,
    )
    config.wam = _section(
        wam,
        steps["wam"],
        batch_size=16,
        label_fraction=1.0,  # training episodes that keep their actions: 0.01, 0.1, 1.0
        label_seed=0,  # which episodes those are (nested: the 10% set is inside the 100%)
        # Below 100% labels, labelled windows are repeated until they make up this share of
        # each epoch (0: sample the split as it is); the BC baseline sees labelled ones only.
        labelled_share=0.5,
        action_loss_weight=1.0,  # λ in video_ce + λ·action_ce
        # Inside action_ce: the policy head's term (next action from the observed past)
        # against the action slots' (inverse dynamics), `wam_jax/steps.py`.
        policy_loss_weight=1.0,
        video_loss_weight=1.0,
        # With `model.target_head`: the weight of the auxiliary loss that points at the cells of
        # the objects the mission names (labels from the simulator, see `steps.py`).
        target_loss_weight=1.0,
        # With `model.ahead_head`: the weight of the auxiliary loss on the class of the cell in
        # front of the agent (free, wall, object, named object; data 1.6.0, `steps.py`).
        ahead_loss_weight=1.0,
        # > 0: the WAM's own inverse-dynamics query names the actions of unlabelled clips, and
        # where its probability is at least the threshold the policy head learns them too, at
        # this weight (`wam_jax/pseudo_labels.py`); one more forward pass a step (skipped at
        # label_fraction 1, where no action is unknown). 0: off.
        pseudo_label_weight=0.0,
        pseudo_label_threshold=0.9,
        # > 0: about this share of the windows of a batch read another window's mission (one
        # naming another object); their policy learns only that PICKUP is wrong where the
        # agent faces its own mission's object (`wam_jax/mission_contrast.py`, needs
        # `model.ahead_head`), at `mission_contrast_weight`. 0: off.
        mission_contrast_share=0.0,
        mission_contrast_weight=1.0,
        # A `wam label` file: a frozen WAM's inverse-dynamics actions for every training
        # window, read where the real actions are hidden (the VPT route; BC then learns from
        # real and named actions alike, `wam_jax/labelling.py`). "": hidden actions stay
        # unknown.
        named_actions="",
        # A `wam data babyai --actor W` build: episodes W's policy played, every state labelled
        # by the full-view expert (DAgger). Its training windows join data_dir's (at 100%
        # labels only, `wam_jax/data/aggregate.py`). "": the expert's episodes alone.
        on_policy_data_dir="",
        # True: the behaviour-cloning baseline: action loss only, policy queries only, the
        # labelled episodes only, same backbone.
        behaviour_cloning=False,
        # Latent-action route: "joint" trains on real labels where known; "pretrain" hides
        # every real label and learns from the LAM's latent actions (needs lam_workdir);
        # "align" starts from a pretrain run (init_workdir) and learns the real actions.
        stage="joint",
        # A WAM run whose `wam` weights (and vocabulary) a fresh joint, BC or align run starts
        # from, e.g. the joint WAM from the BC baseline's weights; only params carry over.
        init_workdir="",
        # Which checkpoint of init_workdir (-1: its newest). The run records it, with the
        # training steps behind it, in its `start.json` (`wam_jax/run_start.py`).
        init_step=-1,
    )
    config.tokenizer_workdir = ""
    config.lam_workdir = ""  # a `genie train lam` run on BabyAI: the latent-action route
    if role == "labeller":
        _as_labeller(config)
    return config


def _as_labeller(config: ml_collections.ConfigDict) -> None:
    """The WAM as an inverse-dynamics labeller (`wam label`, then a run with
    `config.wam.named_actions`), still a joint run: video loss and action loss, the same label
    plan as the run that reads its labels (it must see no label that run hides).

    What the policy presets use to read the mission (rotary positions, the target head) slows
    the action slots' learning, and an action between two frames needs neither: validation
    inverse accuracy at 10% labels on 10000 GoToLocal episodes, 600 steps, 0.748 with the
    smoke options against 0.973 with these (RESULTS.md, "The VPT route").
    """
    model = config.wam.model
    model.spatial_positions = "learned"
    model.target_head = False
    # Measured without these (the 0.973 above); an action between two frames needs neither.
    model.grid_conv = False
    model.ahead_head = False
    # maskgit, policy, inverse: half of the samples hide every action and show every frame,
    # the query `wam label` asks.
    model.mode_probs = (0.3, 0.2, 0.5)
    config.wam.num_steps = 600
