"""Hyperparameters of the World Action Model backbone (one frozen dataclass)."""

import dataclasses

from genie_jax.nn.config_parts import DtypeFields

MASK_MODES = ("maskgit", "policy", "inverse")
# Where a video token sits, added to the stack's learned per-position embedding:
# "learned" adds nothing more; "grid" adds a learned row + column embedding (see
# `GridPositionEmbedding`), shared by the tokens of a row and of a column; "rope" adds, on
# top of "grid", 2D rotary positions in every spatial attention (`genie_jax.nn.rotary`), so
# that attention scores between video tokens see their offset.
SPATIAL_POSITIONS = ("learned", "grid", "rope")


@dataclasses.dataclass(frozen=True)
class WAMConfig(DtypeFields):
    num_layers: int = 4
    dim: int = 256
    num_heads: int = 4
    mlp_ratio: int = 4
    max_frames: int = 16  # the longest clip, instruction excluded
    max_words: int = 12  # L: instruction tokens (padded); every frame attends to them
    qk_norm: bool = True
    spatial_positions: str = "learned"  # one of SPATIAL_POSITIONS
    # With "rope": how many heads of each spatial attention use the rotary positions (0: all).
    # The others score by content only, so a query without a grid position (the action slot)
    # can look for a kind of cell wherever it is (on BabyAI, 2 of 4 heads did not make the
    # action head learn faster; RESULTS.md).
    rotary_heads: int = 0
    # True: the frozen tokenizer encodes every frame as a clip of its own, so a cell's code
    # depends on that frame only. False: the whole clip at once, where the tokenizer's causal
    # temporal attention can give the same cell different codes after different histories
    # (on BabyAI, each agent orientation came out as 2-4 codes; see NOTES).
    tokenize_per_frame: bool = False
    # True: every video token embedding is modulated by the instruction, e * (1 + gamma) +
    # beta with (gamma, beta) a linear map of the mean word embedding (FiLM, as the BabyAI
    # baselines condition their visual features), zero at initialization. False: the
    # instruction reaches the frame through attention only.
    instruction_film: bool = False
    # True: one more head, a logit per video token: "this cell holds an object the instruction
    # names", trained (weight `config.wam.target_loss_weight`) to point at those cells with
    # labels the simulator gives for free. An auxiliary grounding objective. False: no such
    # head or loss.
    target_head: bool = False
    # True (needs `target_head`): the policy heads read, besides the action slot, the frame's
    # video features pooled by the target head's softmax over its tokens (the pointer held
    # constant for the policy loss), through a residual hidden layer over both. False: the
    # policy reads the slot alone, which can ignore the instruction even where the target
    # head points right (RESULTS.md, "Which policy reads its mission").
    policy_reads_target: bool = False
    # True: one more head on what the policy head reads at frame t: the class of the cell in
    # front of the agent in frame t (free, wall, object, named object; `babyai_env.
    # AHEAD_CLASSES`), trained (weight `config.wam.ahead_loss_weight`) with labels the
    # simulator gives for free (data 1.6.0). The policy's one systematic error is walking
    # into what it faces (RESULTS.md, "Why the 100%-label policy stops near 92%"). False: no
    # such head or loss.
    ahead_head: bool = False
    # True: before the transformer, each frame's video token embeddings get a residual 3x3
    # convolution over the token grid (zero at initialization), so every cell's embedding
    # holds its neighbours': what lies next to the agent in each direction is then one MLP
    # away instead of a content-dependent attention offset. Spatial only, so causality in time
    # holds. Needs a square token grid. False: cells meet through attention alone.
    grid_conv: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"
    # Training masks, one mode per sample (see `masking.py`): their probabilities, in the
    # order of MASK_MODES. `maskgit`: video tokens from a random frame on hidden at a rate
    # U[min_mask_rate, max_mask_rate], action slots at a rate U[0, 1]; `policy`: everything
    # from a random frame on hidden; `inverse`: every action hidden, no video token.
    mode_probs: tuple[float, float, float] = (0.6, 0.25, 0.15)
    min_mask_rate: float = 0.5
    max_mask_rate: float = 1.0

    @property
    def grid_positions(self) -> bool:
        """Whether video tokens get the learned row + column embedding ("grid" and "rope")."""
        return self.spatial_positions in ("grid", "rope")

    def __post_init__(self):
        if self.spatial_positions not in SPATIAL_POSITIONS:
            raise ValueError(
                f"spatial_positions {self.spatial_positions!r} is not one of {SPATIAL_POSITIONS}"
            )
        if self.spatial_positions == "rope" and (self.dim // self.num_heads) % 4:
            raise ValueError(
                f"spatial_positions 'rope' needs a head size (dim / num_heads = "
                f"{self.dim} / {self.num_heads}) divisible by 4"
            )
        if not 0 <= self.rotary_heads <= self.num_heads:
            raise ValueError(
                f"rotary_heads {self.rotary_heads} must be in [0, num_heads={self.num_heads}]"
            )
        if self.rotary_heads and self.spatial_positions != "rope":
            raise ValueError(
                f"rotary_heads {self.rotary_heads} needs spatial_positions 'rope', got "
                f"{self.spatial_positions!r}"
            )
        if self.policy_reads_target and not self.target_head:
            raise ValueError("policy_reads_target needs target_head: the policy reads its pointer")
        if len(self.mode_probs) != len(MASK_MODES) or min(self.mode_probs) < 0:
            raise ValueError(
                f"mode_probs {self.mode_probs} must be {len(MASK_MODES)} non-negative "
                f"probabilities for {MASK_MODES}"
            )
        if abs(sum(self.mode_probs) - 1.0) > 1e-6:
            raise ValueError(f"mode_probs {self.mode_probs} must sum to 1")
        if not 0.0 <= self.min_mask_rate <= self.max_mask_rate <= 1.0:
            raise ValueError(
                f"mask rates must satisfy 0 <= min ({self.min_mask_rate}) <= max "
                f"({self.max_mask_rate}) <= 1"
            )
