"""The World Action Model backbone: one ST-transformer over instruction, actions and video.

Every frame of the transformer holds `L + 1 + N` positions:

  [ w_0 .. w_{L-1} | slot_t | z_t,0 .. z_t,N-1 ]

the instruction's word tokens (the same in every frame, so spatial attention lets every token
read the instruction), one action slot, and the frame's N video tokens. Temporal attention is
causal, as in the Genie dynamics model.

Action alignment: a_t is the action taken at frame t, moving o_t to o_{t+1}. It sits in the
slot of frame t+1, the frame it leads to (Genie's convention: frame 0 gets a learned "none");
so o_{t+1}'s tokens see a_t through spatial attention, and nothing later than frame t+1 can
influence it. Two heads read the slot's output at frame t:

  action head   the slot's own action a_{t-1} (trained where the slot is hidden): inverse
                dynamics when frames t-1 and t are shown, a masked guess otherwise;
  policy head   the next action a_t, from frames <= t and slots <= t only (causal in time,
                so a_t, which sits in slot t+1, is never seen): every shown frame of every
                clip is a policy example, as in next-token prediction.

One model, three uses by masking:

  policy         frames 0..t given -> a_t from the policy head at frame t; with a_t in slot
                 t+1 and frame t+1 hidden, MaskGIT imagines o_{t+1}
  world model    frames 0..t and a_t given, frame t+1 hidden      -> o_{t+1}
  inverse model  frames t and t+1 given, slot t+1 hidden          -> a_t (action head)

DEVIATION: Genie's dynamics model predicts no actions. Reading the policy from the hidden slot
of a hidden next frame (the first design here) stayed at the action prior after 600 smoke
steps; next-action prediction gets a training example from every shown frame.

Options (`WAMConfig`): `spatial_positions="grid"` adds a row + column vector to each video
token (`"rope"`: and 2D rotary positions in spatial attention, words and slot unrotated);
`instruction_film` modulates the video token embeddings by the mean word embedding (FiLM)
before the stack; `target_head` adds a logit per video token, trained to point at the
cells of the objects the instruction names (auxiliary grounding, `targets` [B, T, N]), and
`policy_reads_target` gives the policy heads the video features that head points at:

  policy input_t = slot_t + gelu(W [slot_t ; sum_n softmax_n(target_t,n) video_t,n])

(the softmax held constant for the policy loss; frame t's video features see frames <= t
only, so the policy stays causal). `ahead_head` classifies, from what the policy head reads
at frame t, the cell in front of the agent in frame t (`ahead` [B, T, 4]: free, wall, object,
named object), an auxiliary loss on the geometry the policy must get right. `grid_conv` adds
to each video token embedding a 3x3 convolution over its frame's token grid (zero at
initialization), so a cell's embedding holds its neighbours'. All are off in
`WAMConfig`; the BabyAI presets turn on `rope` and `target_head` (RESULTS.md has what each
measured). `rotary_heads` keeps the rotation to the first heads of each spatial attention.

Slot ids: 0..R-1 real actions, R..R+A-1 latent actions (from a LAM), then `mask_action_id`
(hidden or unknown) and `no_action_id` (frame 0, and frames past the episode's end).
Video ids: 0..V-1 tokenizer codes, V the mask. Outputs are fp32 logits: video [B, T, N, V],
real actions [B, T, R] and latent actions [B, T, A] (A = 0: no latent heads), each from the
action head (`actions`, `latent_actions`) and the policy head (`next_actions`,
`next_latent_actions`).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.nn import (
    FactorizedPositionEmbedding,
    GridPositionEmbedding,
    STTransformer,
    grid_rotary_angles,
    heads_with_rotary,
    stack_options,
)
from wam_jax.config import WAMConfig
from wam_jax.data.babyai_env import AHEAD_CLASSES


def _head(features: int, cfg: WAMConfig, axis: str, name: str) -> nn.Dense:
    return nn.Dense(
        features,
        dtype=jnp.float32,  # fp32 logits: the cross-entropy must not run in bf16
        param_dtype=cfg.jnp_param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", axis)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axis,)),
        name=name,
    )


def _embed(count: int, cfg: WAMConfig, name: str) -> nn.Embed:
    init = nn.initializers.normal(stddev=0.02)
    return nn.Embed(
        count,
        cfg.dim,
        dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        embedding_init=nn.with_logical_partitioning(init, ("codebook", "embed")),
        name=name,
    )


class WorldActionModel(nn.Module):
    config: WAMConfig
    vocab_size: int  # V: the tokenizer's codebook; id V is the video mask
    num_tokens: int  # N: tokens per frame
    num_actions: int  # R: real actions (BabyAI: 7)
    num_latent_actions: int  # A: the LAM's codebook (0: no latent actions)
    num_words: int  # W: the instruction vocabulary, padding (id 0) included

    @property
    def video_mask_id(self) -> int:
        return self.vocab_size

    @property
    def mask_action_id(self) -> int:
        return self.num_actions + self.num_latent_actions

    @property
    def no_action_id(self) -> int:
        return self.mask_action_id + 1

    @property
    def positions_per_frame(self) -> int:
        return self.config.max_words + 1 + self.num_tokens

    def setup(self):
        cfg = self.config
        self.word_embed = _embed(self.num_words, cfg, "word_embed")
        self.token_embed = _embed(self.vocab_size + 1, cfg, "token_embed")
        self.action_embed = _embed(self.no_action_id + 1, cfg, "action_embed")
        self.pos = FactorizedPositionEmbedding(
            cfg.max_frames, self.positions_per_frame, cfg.jnp_param_dtype, name="pos"
        )
        if cfg.grid_positions or cfg.grid_conv:
            side = math.isqrt(self.num_tokens)
            if side * side != self.num_tokens:
                raise ValueError(
                    f"grid positions and grid_conv need a square frame; {self.num_tokens} tokens"
                )
        if cfg.grid_positions:
            self.grid_pos = GridPositionEmbedding(
                side, side, cfg.dim, cfg.jnp_param_dtype, name="grid_pos"
            )
        self.transformer = STTransformer(
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            mlp_dim=cfg.mlp_ratio * cfg.dim,
            name="transformer",
            **stack_options(cfg),
        )
        if cfg.grid_conv:
            self.grid_conv = nn.Conv(
                cfg.dim,
                (3, 3),
                padding="SAME",
                dtype=cfg.jnp_dtype,
                param_dtype=cfg.jnp_param_dtype,
                kernel_init=nn.with_logical_partitioning(
                    nn.initializers.zeros, ("conv_height", "conv_width", "embed", "mlp")
                ),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
                name="grid_conv",
            )
        if cfg.instruction_film:
            self.film = nn.Dense(
                2 * cfg.dim,
                dtype=cfg.jnp_dtype,
                param_dtype=cfg.jnp_param_dtype,
                kernel_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed", "mlp")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)),
                name="film",
            )
        self.video_head = _head(self.vocab_size, cfg, "vocab", "video_head")
        if cfg.target_head:
            self.target_head = _head(1, cfg, "actions", "target_head")
        self.action_head = _head(self.num_actions, cfg, "actions", "action_head")
        self.policy_head = _head(self.num_actions, cfg, "actions", "policy_head")
        if cfg.ahead_head:
            self.ahead_head = _head(len(AHEAD_CLASSES), cfg, "actions", "ahead_head")
        if cfg.policy_reads_target:
            self.policy_hidden = _head(cfg.dim, cfg, "mlp", "policy_hidden")
        if self.num_latent_actions:
            self.latent_head = _head(self.num_latent_actions, cfg, "actions", "latent_head")
            self.latent_policy_head = _head(
                self.num_latent_actions, cfg, "actions", "latent_policy_head"
            )

    def _check_inputs(self, words_BL, tokens_BTN, slots_BT) -> None:
        cfg = self.config
        if words_BL.ndim != 2 or words_BL.shape[1] != cfg.max_words:
            raise ValueError(f"WAM expects words [B, {cfg.max_words}], got {words_BL.shape}")
        if tokens_BTN.ndim != 3 or tokens_BTN.shape[2] != self.num_tokens:
            raise ValueError(
                f"WAM expects tokens [B, T, {self.num_tokens}], got {tokens_BTN.shape}"
            )
        if slots_BT.shape != tokens_BTN.shape[:2] or words_BL.shape[0] != slots_BT.shape[0]:
            raise ValueError(
                f"one action slot per frame expected: words {words_BL.shape}, tokens "
                f"{tokens_BTN.shape}, slots {slots_BT.shape}"
            )

    def _rotary(self) -> jax.Array | None:
        """With `rope`: angles for [words | slot | video grid] (words and slot unrotated), per
        head ([N, K, F]) when only `rotary_heads` of the heads rotate."""
        if self.config.spatial_positions != "rope":
            return None
        side = math.isqrt(self.num_tokens)
        heads = self.config.num_heads
        angles_NF = grid_rotary_angles(
            side, side, self.config.dim // heads, leading=self.config.max_words + 1
        )
        if self.config.rotary_heads in (0, heads):
            return angles_NF
        return heads_with_rotary(angles_NF, heads, self.config.rotary_heads)

    def _film(self, words_BL: jax.Array, words_BLD: jax.Array, video_BTND: jax.Array) -> jax.Array:
        """video * (1 + gamma) + beta, (gamma, beta) from the mean embedding of the words
        (padding, id 0, left out)."""
        real_BL1 = (words_BL > 0)[:, :, None].astype(words_BLD.dtype)
        count_B1 = jnp.maximum(jnp.sum(real_BL1, axis=1), 1.0)
        bag_BD = jnp.sum(words_BLD * real_BL1, axis=1) / count_B1
        gamma_BD, beta_BD = jnp.split(self.film(bag_BD), 2, axis=-1)
        return video_BTND * (1.0 + gamma_BD[:, None, None, :]) + beta_BD[:, None, None, :]

    def video_embeddings(self, words_BL: jax.Array, tokens_BTN: jax.Array) -> jax.Array:
        """[B, T, N, D]: the video tokens as the transformer receives them (code embedding,
        grid positions, FiLM, the grid convolution; the factorized positions come later)."""
        video_BTND = self.token_embed(tokens_BTN)
        if self.config.grid_positions:
            video_BTND = video_BTND + self.grid_pos().astype(video_BTND.dtype)
        if self.config.instruction_film:
            video_BTND = self._film(words_BL, self.word_embed(words_BL), video_BTND)
        if self.config.grid_conv:
            batch, frames, tokens, dim = video_BTND.shape
            side = math.isqrt(tokens)
            grid_XSSD = video_BTND.reshape(batch * frames, side, side, dim)  # row-major cells
            video_BTND = video_BTND + self.grid_conv(grid_XSSD).reshape(video_BTND.shape)
        return video_BTND

    def _policy_input(
        self, slot_BTD: jax.Array, video_out_BTND: jax.Array, targets_BTN: jax.Array
    ) -> jax.Array:
        """The slot, plus (with `policy_reads_target`) what the target head points at."""
        if not self.config.policy_reads_target:
            return slot_BTD
        pointer_BTN = jax.nn.softmax(jax.lax.stop_gradient(targets_BTN), axis=-1)
        target_BTD = jnp.einsum("btn,btnd->btd", pointer_BTN, video_out_BTND)
        both_BTD = jnp.concatenate([slot_BTD, target_BTD], axis=-1)
        return slot_BTD + nn.gelu(self.policy_hidden(both_BTD))

    def __call__(
        self, words_BL: jax.Array, tokens_BTN: jax.Array, slots_BT: jax.Array
    ) -> dict[str, jax.Array]:
        """Logits for every position: `video` [B, T, N, V], `actions` and `next_actions`
        [B, T, R] and, with a latent codebook, `latent_actions` and `next_latent_actions`
        [B, T, A]. Row t of `actions` predicts the action in slot t, i.e. a_{t-1}; row t of
        `next_actions` predicts a_t."""
        self._check_inputs(words_BL, tokens_BTN, slots_BT)
        batch, frames = slots_BT.shape
        words_BLD = self.word_embed(words_BL)
        words_BTLD = jnp.broadcast_to(words_BLD[:, None], (batch, frames) + words_BLD.shape[1:])
        slot_BT1D = self.action_embed(slots_BT)[:, :, None, :]
        video_BTND = self.video_embeddings(words_BL, tokens_BTN)
        x_BTPD = jnp.concatenate([words_BTLD, slot_BT1D, video_BTND], axis=2)
        x_BTPD = self.transformer(self.pos(x_BTPD), spatial_rotary_NF=self._rotary())
        x_BTPD = x_BTPD.astype(jnp.float32)
        slot = self.config.max_words
        slot_BTD = x_BTPD[:, :, slot]
        video_out_BTND = x_BTPD[:, :, slot + 1 :]
        out = {
            "video": self.video_head(video_out_BTND),
            "actions": self.action_head(slot_BTD),
        }
        if self.config.target_head:
            out["targets"] = self.target_head(video_out_BTND)[..., 0]
        policy_BTD = self._policy_input(slot_BTD, video_out_BTND, out.get("targets"))
        out["next_actions"] = self.policy_head(policy_BTD)
        if self.config.ahead_head:
            out["ahead"] = self.ahead_head(policy_BTD)
        if self.num_latent_actions:
            out["latent_actions"] = self.latent_head(slot_BTD)
            out["next_latent_actions"] = self.latent_policy_head(policy_BTD)
        return out
