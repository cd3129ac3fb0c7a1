"""The WAM with its frozen parts: the genie_jax tokenizer, an optional LAM, and the backbone.

One module, so one checkpoint holds everything evaluation and the closed-loop policy need (as
`GenieModel` does for Genie). The tokenizer is trained on BabyAI frames by `genie train
tokenizer` and always frozen; the LAM (`genie train lam` on BabyAI), when present, labels
every clip with latent actions for the latent-action route.

`__call__` turns a batch into the backbone's inputs: pixels -> tokens, the clip's actions ->
per-frame slots (a_t into slot t+1, see `model.py`), the masks applied.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genie_jax.lam import LAMConfig, LatentActionModel
from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from wam_jax.config import WAMConfig
from wam_jax.model import WorldActionModel

NO_LABEL = -1  # an action that is unknown (unlabelled clip, after the last frame, padding)


def shift_into_slots(actions_BT: jax.Array) -> jax.Array:
    """Per-frame actions a_t (t -> t+1) -> slot targets: slot 0 gets NO_LABEL, slot t a_{t-1}."""
    first_B1 = jnp.full((actions_BT.shape[0], 1), NO_LABEL, actions_BT.dtype)
    return jnp.concatenate([first_B1, actions_BT[:, :-1]], axis=1)


class WAMSystem(nn.Module):
    tokenizer_config: TokenizerConfig
    lam_config: LAMConfig | None  # None: no latent actions
    wam_config: WAMConfig
    num_actions: int  # R, the environment's actions
    num_words: int  # the instruction vocabulary, padding included

    def setup(self):
        self.tokenizer = Tokenizer(self.tokenizer_config)
        if self.lam_config is not None:
            self.lam = LatentActionModel(self.lam_config)
        self.wam = WorldActionModel(
            self.wam_config,
            vocab_size=self.tokenizer_config.codebook_size,
            num_tokens=self.tokenizer_config.num_tokens,
            num_actions=self.num_actions,
            num_latent_actions=self.lam_config.num_actions if self.lam_config else 0,
            num_words=self.num_words,
        )

    def tokenize(self, video_BTHWC: jax.Array) -> jax.Array:
        """Pixels in [0, 1] -> token indices [B, T, N]; the tokenizer never trains here.

        With `wam_config.tokenize_per_frame`, each frame is encoded as a one-frame clip."""
        batch, frames = video_BTHWC.shape[:2]
        if self.wam_config.tokenize_per_frame:
            video_BTHWC = video_BTHWC.reshape((batch * frames, 1) + video_BTHWC.shape[2:])
        _, aux = self.tokenizer.encode(video_BTHWC, train=False)
        indices_BTN = aux["indices"].reshape(batch, frames, -1)
        return jax.lax.stop_gradient(indices_BTN)

    def detokenize(self, indices_BTN: jax.Array) -> jax.Array:
        return self.tokenizer.decode_indices(indices_BTN)

    def latent_actions(self, video_BTHWC: jax.Array) -> jax.Array:
        """ã_t for o_t -> o_{t+1}, [B, T-1]; the LAM never trains here."""
        return jax.lax.stop_gradient(self.lam.infer_actions(video_BTHWC))

    def slot_inputs(
        self,
        actions_BT: jax.Array,
        length_B: jax.Array,
        hidden_BT: jax.Array,
        latent_BT: jax.Array | None = None,
    ) -> jax.Array:
        """Slot ids [B, T]: a_{t-1} in slot t (real where known, else latent where given, else
        the mask id), the mask id where `hidden_BT`, "none" in slot 0 and past `length`."""
        wam = self.wam
        real_BT = shift_into_slots(actions_BT)
        slots_BT = jnp.where(real_BT >= 0, real_BT, wam.mask_action_id)
        if latent_BT is not None:
            latent_slot_BT = shift_into_slots(latent_BT)
            slots_BT = jnp.where(
                (real_BT < 0) & (latent_slot_BT >= 0), wam.num_actions + latent_slot_BT, slots_BT
            )
        slots_BT = jnp.where(hidden_BT, wam.mask_action_id, slots_BT)
        t_T = jnp.arange(actions_BT.shape[1])
        inside_BT = (t_T[None, :] >= 1) & (t_T[None, :] < length_B[:, None])
        return jnp.where(inside_BT, slots_BT, wam.no_action_id)

    def __call__(
        self,
        words_BL: jax.Array,
        video_BTHWC: jax.Array,
        actions_BT: jax.Array,
        length_B: jax.Array,
        video_hidden_BTN: jax.Array,
        slots_hidden_BT: jax.Array,
        *,
        train: bool = False,
    ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """(logits, aux): the backbone's logits for the batch under the given masks.

        `actions_BT`: a_t per frame, NO_LABEL where unknown. aux: `tokens` [B, T, N] (video
        targets), `latent_actions` [B, T] (ã_t per frame, NO_LABEL at the last; only with a
        LAM), `slots` [B, T] (the slot ids the backbone saw). `train` is accepted for the
        shared train-state code; nothing here changes with it (the frozen parts never train).
        """
        del train
        tokens_BTN = self.tokenize(video_BTHWC)
        if self.is_initializing():  # create the decoder's params: imagination needs them
            self.detokenize(tokens_BTN)
        aux = {"tokens": tokens_BTN}
        latent_BT = None
        if self.lam_config is not None:
            if self.is_initializing():  # the LAM's decoder too, so its run's checkpoint fits
                self.lam(video_BTHWC, train=False)
            latent_BA = self.latent_actions(video_BTHWC)
            pad_B1 = jnp.full((latent_BA.shape[0], 1), NO_LABEL, latent_BA.dtype)
            latent_BT = jnp.concatenate([latent_BA, pad_B1], axis=1)
            aux["latent_actions"] = latent_BT
        slots_BT = self.slot_inputs(actions_BT, length_B, slots_hidden_BT, latent_BT)
        aux["slots"] = slots_BT
        inputs_BTN = jnp.where(video_hidden_BTN, self.wam.video_mask_id, tokens_BTN)
        return self.wam(words_BL, inputs_BTN, slots_BT), aux
