"""The three Genie parts in one module: tokenizer, latent action model, dynamics model.

The dynamics run trains this module with the tokenizer frozen (and the LAM frozen unless it is
co-trained), so one dynamics checkpoint holds everything `genie play` and evaluation need.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.dynamics import DynamicsConfig, DynamicsModel, frame_actions
from genie_jax.lam import LAMConfig, LatentActionModel
from genie_jax.tokenizer import Tokenizer, TokenizerConfig


def standalone_dynamics(genie: "GenieModel") -> DynamicsModel:
    """The dynamics part of `genie` as its own unbound module (its params: params["dynamics"])."""
    return DynamicsModel(
        genie.dynamics_config,
        vocab_size=genie.tokenizer_config.codebook_size,
        num_tokens=genie.tokenizer_config.num_tokens,
        num_actions=genie.lam_config.num_actions,
    )


class GenieModel(nn.Module):
    tokenizer_config: TokenizerConfig
    lam_config: LAMConfig
    dynamics_config: DynamicsConfig

    def setup(self):
        tok, lam = self.tokenizer_config, self.lam_config
        if (tok.frame_size, tok.channels) != (lam.frame_size, lam.channels):
            raise ValueError(
                f"tokenizer frames {tok.frame_size}x{tok.frame_size}x{tok.channels} differ from "
                f"LAM frames {lam.frame_size}x{lam.frame_size}x{lam.channels}"
            )
        self.tokenizer = Tokenizer(tok)
        self.lam = LatentActionModel(lam)
        self.dynamics = standalone_dynamics(self)

    def tokenize(self, video_BTHWC: jax.Array) -> jax.Array:
        """Pixels in [0, 1] -> token indices [B, T, N] (the tokenizer never trains here)."""
        _, aux = self.tokenizer.encode(video_BTHWC, train=False)
        return aux["indices"]

    def detokenize(self, indices_BTN: jax.Array) -> jax.Array:
        return self.tokenizer.decode_indices(indices_BTN)

    def latent_actions(self, video_BTHWC: jax.Array) -> jax.Array:
        """Video [B, T, ...] -> latent actions [B, T-1], ã_t for x_t -> x_{t+1}."""
        return self.lam.infer_actions(video_BTHWC)

    def __call__(
        self,
        video_BTHWC: jax.Array,
        mask_BTN: jax.Array,
        *,
        train: bool = False,
        lam_reconstruction: bool = False,
    ) -> tuple[jax.Array, dict]:
        """(dynamics logits [B, T, N, V], aux) for video with the tokens under `mask_BTN` hidden.

        aux: `tokens` [B, T, N] (targets), `actions` [B, T-1], `lam` (quantizer aux) and, with
        `lam_reconstruction` (co-training), `lam_prediction` [B, T-1, H, W, C].
        `train` only reaches the LAM's quantizer (usage counters for dead-code reset).
        """
        tokens_BTN = self.tokenize(video_BTHWC)
        if self.is_initializing():  # create the decoder's params too: sampling needs them
            self.detokenize(tokens_BTN)
        aux = {"tokens": tokens_BTN}
        if lam_reconstruction or self.is_initializing():
            aux["lam_prediction"], lam_aux = self.lam(video_BTHWC, train=train)
        else:
            _, lam_aux = self.lam.encode(video_BTHWC, train=train)
        # The dynamics model sees the actions as indices: no gradient reaches the LAM from it.
        actions_BA = jax.lax.stop_gradient(lam_aux["indices"])
        aux.update(actions=actions_BA, lam=lam_aux)
        inputs_BTN = jnp.where(mask_BTN, self.dynamics.mask_id, tokens_BTN)
        logits_BTNV = self.dynamics(
            inputs_BTN, frame_actions(actions_BA, self.lam_config.num_actions)
        )
        return logits_BTNV, aux
