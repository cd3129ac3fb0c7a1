"""Train and eval steps of the dynamics model (a `GenieModel` with frozen parts).

Loss: cross-entropy on the masked tokens only (fp32 logits), averaged over masked tokens.
The tokenizer is always frozen; the LAM is frozen, or co-trained with its own reconstruction
loss added (`cotrain_lam`). Frozen parameters enter the loss under `stop_gradient` and their
optimizer is `set_to_zero` (see `loop.py`), so they never move.
"""

import jax
import jax.numpy as jnp
import optax

from genie_jax.dynamics import sample_training_mask
from genie_jax.metrics import psnr
from genie_jax.train.state import TrainState
from genie_jax.train.steps import (
    Batch,
    Metrics,
    global_norm,
    reset_dead_codes_in_state,
    video_to_unit,
)


def masked_token_metrics(
    logits_BTNV: jax.Array, tokens_BTN: jax.Array, mask_BTN: jax.Array
) -> dict[str, jax.Array]:
    """Cross-entropy and accuracy over the masked tokens (fp32)."""
    ce_BTN = optax.softmax_cross_entropy_with_integer_labels(
        logits_BTNV.astype(jnp.float32), tokens_BTN
    )
    weight_BTN = mask_BTN.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(weight_BTN), 1.0)
    correct_BTN = (jnp.argmax(logits_BTNV, axis=-1) == tokens_BTN).astype(jnp.float32)
    return {
        "cross_entropy": jnp.sum(ce_BTN * weight_BTN) / count,
        "masked_accuracy": jnp.sum(correct_BTN * weight_BTN) / count,
        "mask_rate": jnp.mean(weight_BTN),
    }


def dynamics_train_step(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    *,
    num_tokens: int,
    frozen: tuple[str, ...] = ("tokenizer", "lam"),
    min_mask_rate: float = 0.5,
    max_mask_rate: float = 1.0,
    lam_loss_weight: float = 1.0,
    dead_code_threshold: int = 0,
) -> tuple[TrainState, Metrics]:
    """One step on masked-token cross-entropy (+ the LAM's loss when it is not frozen)."""
    cotrain_lam = "lam" not in frozen
    video_BTHWC = video_to_unit(batch["video"])
    step_rng = jax.random.fold_in(rng, state.step)
    mask_BTN = sample_training_mask(
        step_rng,
        video_BTHWC.shape[:2] + (num_tokens,),
        min_rate=min_mask_rate,
        max_rate=max_mask_rate,
    )

    def loss_fn(params):
        params = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in params.items()}
        (logits_BTNV, aux), model_state = state.apply_fn(
            {"params": params, **state.model_state},
            video_BTHWC,
            mask_BTN,
            train=cotrain_lam,
            lam_reconstruction=cotrain_lam,
            mutable=list(state.model_state),
        )
        metrics = masked_token_metrics(logits_BTNV, aux["tokens"], mask_BTN)
        loss = metrics["cross_entropy"]
        if cotrain_lam:
            lam_mse = jnp.mean((aux["lam_prediction"] - video_BTHWC[:, 1:]) ** 2)
            loss = loss + lam_loss_weight * (lam_mse + aux["lam"]["loss"])
            metrics["lam_mse"] = lam_mse
            metrics["lam_psnr"] = psnr(video_BTHWC[:, 1:], aux["lam_prediction"])
        metrics["action_usage"] = aux["lam"]["usage"]
        metrics["action_perplexity"] = aux["lam"]["perplexity"]
        return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads, model_state=model_state)
    metrics.update(loss=loss, grad_norm=global_norm(grads))
    if cotrain_lam and dead_code_threshold > 0:
        state, metrics["codes_reset"] = reset_dead_codes_in_state(
            state, rng, dead_code_threshold, part="lam"
        )
    return state, metrics


def dynamics_eval_step(
    state: TrainState, batch: Batch, *, num_tokens: int, mask_rate: float = 0.75
) -> Metrics:
    """Masked-token cross-entropy and accuracy at a fixed rate and a fixed mask (comparable
    across evaluations), plus next-frame accuracy with the last frame fully masked."""
    video_BTHWC = video_to_unit(batch["video"])
    shape_BTN = video_BTHWC.shape[:2] + (num_tokens,)
    variables = {"params": state.params, **state.model_state}
    mask_BTN = sample_training_mask(
        jax.random.key(0), shape_BTN, min_rate=mask_rate, max_rate=mask_rate
    )
    logits_BTNV, aux = state.apply_fn(variables, video_BTHWC, mask_BTN)
    metrics = masked_token_metrics(logits_BTNV, aux["tokens"], mask_BTN)
    last_BTN = jnp.zeros(shape_BTN, bool).at[:, -1].set(True)
    logits_BTNV, aux = state.apply_fn(variables, video_BTHWC, last_BTN)
    last = masked_token_metrics(logits_BTNV, aux["tokens"], last_BTN)
    metrics["last_frame_accuracy"] = last["masked_accuracy"]
    metrics["last_frame_cross_entropy"] = last["cross_entropy"]
    metrics["action_usage"] = aux["lam"]["usage"]
    metrics["action_perplexity"] = aux["lam"]["perplexity"]
    return {"loss": metrics["cross_entropy"], **metrics}
