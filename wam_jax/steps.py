"""Pure train and eval steps of the WAM: one joint loss `video_ce + λ·action_ce`.

Losses are means over the positions whose target is known and that were hidden (slots,
video) or shown (policy):
  video    hidden tokens of frames inside the episode (t < length);
  actions  hidden slots whose real action is known: an unlabelled clip (actions all
           NO_LABEL) adds nothing to it, so it trains the video part alone;
  policy   a_t from frame t's slot (the policy head) where a_t is known and every token of
           frames 0..t was shown (the closed-loop query: the observed past, nothing hidden);
           with a batch's `policy_actions` (expert-noise data), the expert's choice at frame t
           instead of the action taken there;
  latent   the same two for the LAM's latent actions (with a LAM), weighted like actions;
  target   (with the model's target head and a batch's `targets`) in every frame inside the
           episode where the mission's object is on the grid, -log of the softmax mass the
           frame's token logits put on its target tokens, weighted by `target_loss_weight`;
  ahead    (with the model's ahead head and a batch's `ahead`) the class of the cell in front
           of the agent at frame t, from what the policy head reads there, on the policy's
           positions (frames inside the episode whose past was shown whole), weighted by
           `ahead_loss_weight`;
  pseudo   (with `pseudo_label_weight` > 0) the policy head's a_t where a_t is unknown and the
           model's own inverse-dynamics query names it confidently (`pseudo_labels.py`), on
           the same whole-frame positions as `policy`, weighted by `pseudo_label_weight`.
action_ce = slot_weight·actions + policy_weight·policy + pseudo_weight·pseudo (slot_weight 0:
behaviour cloning, which learns the policy alone; policy_weight, 1 by default, scales the
policy term, and the latent policy term alike, against the slots').
The tokenizer and the LAM are frozen: their params enter under `stop_gradient` and their
optimizer is `set_to_zero` (`genie_jax.train.state.freeze_groups`).
"""

import jax
import jax.numpy as jnp
import optax

from genie_jax.train.state import TrainState
from genie_jax.train.steps import Batch, Metrics, global_norm, video_to_unit
from wam_jax.data.babyai_env import AHEAD_NAMED
from wam_jax.masking import sample_wam_masks
from wam_jax.mission_contrast import (
    ahead_under_contrast,
    contrast_windows,
    names_another_object,
    pickup_unlikelihood,
)
from wam_jax.pseudo_labels import inverse_query_masks, pseudo_actions
from wam_jax.system import NO_LABEL, shift_into_slots

FROZEN = ("tokenizer", "lam")


def masked_ce(logits_XK: jax.Array, targets_X: jax.Array, weight_X: jax.Array) -> dict:
    """Cross-entropy and accuracy averaged over `weight_X`; targets < 0 are clipped (and
    must carry weight 0)."""
    targets_X = jnp.maximum(targets_X, 0)
    ce_X = optax.softmax_cross_entropy_with_integer_labels(logits_XK, targets_X)
    weight_X = weight_X.astype(jnp.float32)
    count = jnp.sum(weight_X)
    safe = jnp.maximum(count, 1.0)
    correct_X = (jnp.argmax(logits_XK, axis=-1) == targets_X).astype(jnp.float32)
    return {
        "ce": jnp.sum(ce_X * weight_X) / safe,
        "accuracy": jnp.sum(correct_X * weight_X) / safe,
        "count": count,
    }


def pointer_ce(logits_BTN: jax.Array, targets_BTN: jax.Array, weight_BT: jax.Array) -> dict:
    """Per frame, -log sum_{n target} softmax(logits)_n, averaged over `weight_BT` & frames
    with a target; `accuracy`: the frame's top token is a target."""
    has_target_BT = jnp.any(targets_BTN, axis=-1)
    weight_BT = (weight_BT & has_target_BT).astype(jnp.float32)
    all_BT = jax.nn.logsumexp(logits_BTN, axis=-1)
    # A frame without a target keeps all its tokens here (no all -inf row, no NaN gradient).
    kept_BTN = targets_BTN | ~has_target_BT[..., None]
    on_target_BT = jax.nn.logsumexp(jnp.where(kept_BTN, logits_BTN, -jnp.inf), axis=-1)
    ce_BT = jnp.where(has_target_BT, all_BT - on_target_BT, 0.0)
    top_BT = jnp.take_along_axis(targets_BTN, jnp.argmax(logits_BTN, axis=-1)[..., None], axis=-1)[
        ..., 0
    ]
    count = jnp.sum(weight_BT)
    safe = jnp.maximum(count, 1.0)
    return {
        "ce": jnp.sum(ce_BT * weight_BT) / safe,
        "accuracy": jnp.sum(top_BT.astype(jnp.float32) * weight_BT) / safe,
        "count": count,
    }


def shown_so_far(video_hidden_BTN: jax.Array) -> jax.Array:
    """Bool [B, T]: every token of frames 0..t was shown (the policy head's input is whole)."""
    frame_shown_BT = ~jnp.any(video_hidden_BTN, axis=-1)
    return jnp.cumprod(frame_shown_BT.astype(jnp.int32), axis=1).astype(bool)


def wam_losses(
    logits: dict[str, jax.Array],
    aux: dict[str, jax.Array],
    actions_BT: jax.Array,
    length_B: jax.Array,
    video_hidden_BTN: jax.Array,
    slots_hidden_BT: jax.Array,
    *,
    action_loss_weight: float,
    video_loss_weight: float = 1.0,
    slot_loss_weight: float = 1.0,
    policy_loss_weight: float = 1.0,
    targets_BTN: jax.Array | None = None,
    target_loss_weight: float = 0.0,
    ahead_BT: jax.Array | None = None,
    ahead_loss_weight: float = 0.0,
    pseudo_actions_BT: jax.Array | None = None,
    pseudo_label_weight: float = 0.0,
    policy_actions_BT: jax.Array | None = None,
    swapped_B: jax.Array | None = None,
    contrast_weight: float = 0.0,
) -> tuple[jax.Array, Metrics]:
    """(loss, metrics) of one batch; see the module docstring for what counts. `swapped_B`:
    the windows read under another window's mission (`mission_contrast.py`)."""
    if policy_actions_BT is None:
        policy_actions_BT = actions_BT
    frames = actions_BT.shape[1]
    inside_BT = jnp.arange(frames)[None, :] < length_B[:, None]
    shown_BT = shown_so_far(video_hidden_BTN)
    # The window's own mission: where the policy's and the target head's labels hold.
    own_BT = jnp.ones_like(inside_BT) if swapped_B is None else ~swapped_B[:, None] & inside_BT
    own_shown_BT = shown_BT & own_BT
    video = masked_ce(logits["video"], aux["tokens"], video_hidden_BTN & inside_BT[:, :, None])
    real_BT = shift_into_slots(actions_BT)
    action = masked_ce(logits["actions"], real_BT, slots_hidden_BT & (real_BT >= 0) & inside_BT)
    policy = masked_ce(
        logits["next_actions"], policy_actions_BT, own_shown_BT & (policy_actions_BT >= 0)
    )
    action_ce = slot_loss_weight * action["ce"] + policy_loss_weight * policy["ce"]
    pseudo = None
    if pseudo_actions_BT is not None:
        pseudo_known_BT = own_shown_BT & (pseudo_actions_BT >= 0) & (actions_BT < 0)
        pseudo = masked_ce(logits["next_actions"], pseudo_actions_BT, pseudo_known_BT)
        action_ce = action_ce + pseudo_label_weight * pseudo["ce"]
    loss = video_loss_weight * video["ce"] + action_loss_weight * action_ce
    metrics = {
        "video_ce": video["ce"],
        "video_accuracy": video["accuracy"],
        "action_ce": action["ce"],
        "action_accuracy": action["accuracy"],
        "policy_ce": policy["ce"],
        "policy_accuracy": policy["accuracy"],
        "labelled_slots": action["count"],
        "policy_examples": policy["count"],
    }
    if pseudo is not None:
        metrics.update(
            pseudo_policy_ce=pseudo["ce"],
            pseudo_policy_accuracy=pseudo["accuracy"],
            pseudo_examples=pseudo["count"],
        )
    if "targets" in logits:
        if targets_BTN is None:
            raise ValueError("the WAM has a target head but the batch has no `targets`")
        target = pointer_ce(logits["targets"], targets_BTN, inside_BT & own_BT)
        loss = loss + target_loss_weight * target["ce"]
        metrics.update(target_ce=target["ce"], target_accuracy=target["accuracy"])
    if "ahead" in logits:
        if ahead_BT is None:
            raise ValueError("the WAM has an ahead head but the batch has no `ahead`")
        said_BT = ahead_BT if swapped_B is None else ahead_under_contrast(ahead_BT, swapped_B)
        ahead = masked_ce(logits["ahead"], said_BT, shown_BT & inside_BT & (said_BT >= 0))
        loss = loss + ahead_loss_weight * ahead["ce"]
        metrics.update(ahead_ce=ahead["ce"], ahead_accuracy=ahead["accuracy"])
    if swapped_B is not None:
        if ahead_BT is None:
            raise ValueError("mission contrast needs the batch's `ahead` (data 1.6.0)")
        faced_named_BT = shown_BT & inside_BT & swapped_B[:, None] & (ahead_BT == AHEAD_NAMED)
        contrast = pickup_unlikelihood(logits["next_actions"], faced_named_BT)
        loss = loss + contrast_weight * contrast["loss"]
        metrics.update(
            contrast_pickup_prob=contrast["pickup_prob"],
            contrast_examples=contrast["count"],
            contrast_windows=jnp.sum(swapped_B),
        )
    if "latent_actions" in logits:
        latent_BT = aux["latent_actions"]  # the LAM labels padding too: keep real transitions
        before_last_BT = jnp.arange(frames)[None, :] < length_B[:, None] - 1
        latent_slots_BT = shift_into_slots(latent_BT)
        latent = masked_ce(
            logits["latent_actions"],
            latent_slots_BT,
            slots_hidden_BT & (latent_slots_BT >= 0) & inside_BT,
        )
        latent_policy = masked_ce(
            logits["next_latent_actions"],
            latent_BT,
            own_shown_BT & (latent_BT >= 0) & before_last_BT,
        )
        latent_ce = slot_loss_weight * latent["ce"] + policy_loss_weight * latent_policy["ce"]
        loss = loss + action_loss_weight * latent_ce
        metrics.update(
            latent_ce=latent["ce"],
            latent_accuracy=latent["accuracy"],
            latent_policy_ce=latent_policy["ce"],
            latent_policy_accuracy=latent_policy["accuracy"],
        )
    return loss, metrics


def _inputs(batch: Batch) -> tuple[jax.Array, ...]:
    return batch["words"], video_to_unit(batch["video"]), batch["actions"], batch["length"]


def _batch_kwargs(batch: Batch, target_loss_weight: float, ahead_loss_weight: float) -> dict:
    return {
        "targets_BTN": batch.get("targets"),
        "target_loss_weight": target_loss_weight,
        "ahead_BT": batch.get("ahead"),
        "ahead_loss_weight": ahead_loss_weight,
        "policy_actions_BT": batch.get("policy_actions"),
    }


def wam_train_step(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    *,
    num_tokens: int,
    mode_probs: tuple[float, float, float],
    min_mask_rate: float,
    max_mask_rate: float,
    action_loss_weight: float,
    video_loss_weight: float = 1.0,
    slot_loss_weight: float = 1.0,
    policy_loss_weight: float = 1.0,
    target_loss_weight: float = 0.0,
    ahead_loss_weight: float = 0.0,
    pseudo_label_weight: float = 0.0,
    pseudo_label_threshold: float = 0.9,
    mission_contrast_share: float = 0.0,
    mission_contrast_weight: float = 1.0,
    object_word_ids: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
) -> tuple[TrainState, Metrics]:
    """One optimizer step. `mission_contrast_share` > 0: about that share of the windows read
    another window's mission (`mission_contrast.py`; `object_word_ids`: the vocabulary's
    colour and object-type word ids)."""
    words_BL, video_BTHWC, actions_BT, length_B = _inputs(batch)
    own_words_BL = words_BL
    pseudo_kwargs = {}
    if pseudo_label_weight > 0:
        # The model before this step names the unlabelled clips' actions (no gradient).
        logits, _ = state.apply_fn(
            {"params": state.params, **state.model_state},
            words_BL,
            video_BTHWC,
            actions_BT,
            length_B,
            *inverse_query_masks(actions_BT, num_tokens),
        )
        pseudo_kwargs = {
            "pseudo_actions_BT": pseudo_actions(
                logits["actions"], actions_BT, length_B, threshold=pseudo_label_threshold
            ),
            "pseudo_label_weight": pseudo_label_weight,
        }
    step_rng = jax.random.fold_in(rng, state.step)
    contrast_kwargs = {}
    if mission_contrast_share > 0:
        words_BL, swapped_B = contrast_windows(
            jax.random.fold_in(step_rng, 1), own_words_BL, mission_contrast_share, *object_word_ids
        )
        contrast_kwargs = {"swapped_B": swapped_B, "contrast_weight": mission_contrast_weight}
    masks = sample_wam_masks(
        step_rng,
        length_B,
        num_frames=actions_BT.shape[1],
        num_tokens=num_tokens,
        mode_probs=mode_probs,
        min_mask_rate=min_mask_rate,
        max_mask_rate=max_mask_rate,
    )

    def loss_fn(params):
        params = {k: jax.lax.stop_gradient(v) if k in FROZEN else v for k, v in params.items()}
        (logits, aux), model_state = state.apply_fn(
            {"params": params, **state.model_state},
            words_BL,
            video_BTHWC,
            actions_BT,
            length_B,
            masks["video"],
            masks["slots"],
            mutable=list(state.model_state),
        )
        loss, metrics = wam_losses(
            logits,
            aux,
            actions_BT,
            length_B,
            masks["video"],
            masks["slots"],
            action_loss_weight=action_loss_weight,
            video_loss_weight=video_loss_weight,
            slot_loss_weight=slot_loss_weight,
            policy_loss_weight=policy_loss_weight,
            **_batch_kwargs(batch, target_loss_weight, ahead_loss_weight),
            **pseudo_kwargs,
            **contrast_kwargs,
        )
        return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads, model_state=model_state)
    metrics.update(loss=loss, grad_norm=global_norm(grads))
    return state, metrics


def policy_masks(length_B: jax.Array, frames: int, num_tokens: int):
    """The closed-loop query for every sample at its last transition: frames 0..length-2
    given, the last frame and its slot hidden."""
    cut_B = jnp.maximum(length_B - 1, 1)
    future_BT = jnp.arange(frames)[None, :] >= cut_B[:, None]
    return jnp.broadcast_to(future_BT[:, :, None], future_BT.shape + (num_tokens,)), future_BT


def wam_eval_step(
    state: TrainState,
    batch: Batch,
    *,
    num_tokens: int,
    action_loss_weight: float,
    video_loss_weight: float = 1.0,
    slot_loss_weight: float = 1.0,
    policy_loss_weight: float = 1.0,
    target_loss_weight: float = 0.0,
    ahead_loss_weight: float = 0.0,
    pseudo_label_threshold: float = 0.9,
    object_word_ids: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
) -> Metrics:
    """Losses under fixed masks, one per use of the model: policy (the last frame of each clip
    and its slot hidden; the policy head's a_t at every earlier frame), world model (the last
    frame hidden, actions given) and inverse dynamics (all actions hidden, video given).

    `policy_other_instruction_*`: the policy query with each clip given the next clip's
    instruction (the batch rolled by one). A policy that follows its instruction loses
    accuracy there; one that ignores it scores the same as with its own.

    `named_pickup_prob` (with a batch's `ahead` and `object_word_ids`): the policy's mean
    p(PICKUP) at the frames where the agent faces the object its mission names, and
    `named_pickup_prob_other_instruction` the same frames under the rolled instruction, on
    the clips whose rolled instruction names another object: there PICKUP is wrong, so a
    policy that reads its mission keeps the first high and the second low.

    `pseudo_label_share` / `pseudo_label_accuracy`: of the transitions inside the episodes,
    the share the inverse query names with probability >= `pseudo_label_threshold` (what
    pseudo-labelling would use), and how often those names are the real action."""
    words_BL, video_BTHWC, actions_BT, length_B = _inputs(batch)
    frames = actions_BT.shape[1]
    variables = {"params": state.params, **state.model_state}
    policy_video, policy_slots = policy_masks(length_B, frames, num_tokens)
    other_words_BL = jnp.roll(words_BL, 1, axis=0)
    uses = {
        "policy": (words_BL, policy_video, policy_slots),
        "policy_other_instruction": (other_words_BL, policy_video, policy_slots),
        "world": (words_BL, policy_video, jnp.zeros_like(policy_slots)),
        "inverse": (words_BL, *inverse_query_masks(actions_BT, num_tokens)),
    }
    metrics = {}
    for name, (words, video_hidden, slots_hidden) in uses.items():
        logits, aux = state.apply_fn(
            variables, words, video_BTHWC, actions_BT, length_B, video_hidden, slots_hidden
        )
        loss, m = wam_losses(
            logits,
            aux,
            actions_BT,
            length_B,
            video_hidden,
            slots_hidden,
            action_loss_weight=action_loss_weight,
            video_loss_weight=video_loss_weight,
            slot_loss_weight=slot_loss_weight,
            policy_loss_weight=policy_loss_weight,
            **_batch_kwargs(batch, target_loss_weight, ahead_loss_weight),
        )
        if name == "policy":
            metrics["loss"] = loss
            metrics.update(
                policy_action_accuracy=m["policy_accuracy"], policy_action_ce=m["policy_ce"]
            )
            if "target_accuracy" in m:
                metrics.update(target_accuracy=m["target_accuracy"], target_ce=m["target_ce"])
            if "ahead_accuracy" in m:
                metrics.update(ahead_accuracy=m["ahead_accuracy"], ahead_ce=m["ahead_ce"])
        elif name == "policy_other_instruction":
            metrics.update(
                policy_other_instruction_accuracy=m["policy_accuracy"],
                policy_other_instruction_ce=m["policy_ce"],
            )
        elif name == "world":
            metrics.update(world_video_accuracy=m["video_accuracy"], world_video_ce=m["video_ce"])
        else:
            metrics.update(
                inverse_action_accuracy=m["action_accuracy"], inverse_action_ce=m["action_ce"]
            )
        if name.startswith("policy") and "ahead" in batch and object_word_ids[1]:
            rows_B = jnp.ones_like(length_B, dtype=bool)
            if name == "policy_other_instruction":
                rows_B = names_another_object(words_BL, other_words_BL, *object_word_ids)
            faced_named_BT = (
                shown_so_far(video_hidden)
                & (jnp.arange(frames)[None, :] < length_B[:, None])
                & (batch["ahead"] == AHEAD_NAMED)
                & rows_B[:, None]
            )
            key = name.replace("policy", "named_pickup_prob", 1)
            metrics[key] = pickup_unlikelihood(logits["next_actions"], faced_named_BT)[
                "pickup_prob"
            ]
            metrics.update(
                _pseudo_label_quality(logits, actions_BT, length_B, pseudo_label_threshold)
            )
    return metrics


def _pseudo_label_quality(logits, actions_BT, length_B, threshold: float) -> Metrics:
    """Share of known transitions the inverse query names confidently, and their accuracy."""
    unknown_BT = jnp.full_like(actions_BT, NO_LABEL)
    named_BT = pseudo_actions(logits["actions"], unknown_BT, length_B, threshold=threshold)
    known_BT = actions_BT >= 0
    confident_BT = (named_BT >= 0) & known_BT
    count = jnp.sum(confident_BT)
    right = jnp.sum(confident_BT & (named_BT == actions_BT))
    return {
        "pseudo_label_share": count / jnp.maximum(jnp.sum(known_BT), 1),
        "pseudo_label_accuracy": right / jnp.maximum(count, 1),
    }
