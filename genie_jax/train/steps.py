"""Pure train and eval steps, `(state, batch, rng) -> (state, metrics)`, and their jitting.

Steps are plain functions: tests call them un-jitted. `jit_step` compiles one with explicit
in/out shardings and donates the old state.
"""

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from genie_jax.metrics import psnr, ssim
from genie_jax.nn import reset_dead_codes
from genie_jax.train.sharding import LogicalRules, batch_sharding, replicated
from genie_jax.train.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def video_to_unit(video_BTHWC: jax.Array) -> jax.Array:
    """uint8 pixels -> float32 in [0, 1]."""
    return video_BTHWC.astype(jnp.float32) / 255.0


def vq_reconstruction_train_step(
    state: TrainState,
    batch: Batch,
    rng: jax.Array,
    *,
    target_frames: slice = slice(None),
    dead_code_threshold: int = 0,
) -> tuple[TrainState, Metrics]:
    """One AdamW step on MSE(prediction, video[:, target_frames]) + VQ loss, then dead-code reset.

    Serves every model whose `__call__(video, train=True)` returns (frames, quantizer aux): the
    tokenizer (reconstructs all frames) and the LAM (predicts frames 1..T-1).
    `dead_code_threshold` 0 disables the reset.
    """
    video_BTHWC = video_to_unit(batch["video"])
    target_BTHWC = video_BTHWC[:, target_frames]

    def loss_fn(params):
        variables = {"params": params, **state.model_state}
        (pred_BTHWC, aux), model_state = state.apply_fn(
            variables, video_BTHWC, train=True, mutable=list(state.model_state)
        )
        mse = jnp.mean((pred_BTHWC.astype(jnp.float32) - target_BTHWC) ** 2)
        loss = mse + aux["loss"]
        return loss, (pred_BTHWC, aux, model_state, mse)

    (loss, (pred_BTHWC, aux, model_state, mse)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params
    )
    state = state.apply_gradients(grads, model_state=model_state)
    metrics = {
        "loss": loss,
        "mse": mse,
        "vq_loss": aux["loss"],
        "commitment_loss": aux["commitment_loss"],
        "psnr": psnr(target_BTHWC, pred_BTHWC),
        "codebook_usage": aux["usage"],
        "codebook_perplexity": aux["perplexity"],
        "grad_norm": global_norm(grads),
    }
    if dead_code_threshold > 0:
        state, metrics["codes_reset"] = reset_dead_codes_in_state(state, rng, dead_code_threshold)
    return state, metrics


def reset_dead_codes_in_state(
    state: TrainState, rng: jax.Array, threshold: int, part: str | None = None
) -> tuple[TrainState, jax.Array]:
    """Dead-code reset on every quantizer of the state (or of the `part` subtree only)."""
    reset_rng = jax.random.fold_in(rng, state.step)
    params, vq_stats = state.params, state.model_state["vq_stats"]
    if part is not None:
        params, vq_stats = params[part], vq_stats[part]
    params, vq_stats, num_reset = reset_dead_codes(params, vq_stats, reset_rng, threshold=threshold)
    if part is not None:
        params = {**state.params, part: params}
        vq_stats = {**state.model_state["vq_stats"], part: vq_stats}
    state = state.replace(params=params, model_state={**state.model_state, "vq_stats": vq_stats})
    return state, num_reset


def tokenizer_train_step(
    state: TrainState, batch: Batch, rng: jax.Array, *, dead_code_threshold: int = 0
) -> tuple[TrainState, Metrics]:
    """The tokenizer reconstructs every frame."""
    return vq_reconstruction_train_step(state, batch, rng, dead_code_threshold=dead_code_threshold)


def lam_train_step(
    state: TrainState, batch: Batch, rng: jax.Array, *, dead_code_threshold: int = 0
) -> tuple[TrainState, Metrics]:
    """The LAM predicts frames 1..T-1 from the frames before them and the latent actions."""
    return vq_reconstruction_train_step(
        state, batch, rng, target_frames=slice(1, None), dead_code_threshold=dead_code_threshold
    )


def vq_reconstruction_eval_step(
    state: TrainState, batch: Batch, *, target_frames: slice = slice(None)
) -> Metrics:
    """Prediction quality on a batch: PSNR, SSIM, MSE, codebook usage."""
    video_BTHWC = video_to_unit(batch["video"])
    target_BTHWC = video_BTHWC[:, target_frames]
    variables = {"params": state.params, **state.model_state}
    pred_BTHWC, aux = state.apply_fn(variables, video_BTHWC, train=False)
    return {
        "psnr": psnr(target_BTHWC, pred_BTHWC),
        "ssim": ssim(target_BTHWC, pred_BTHWC),
        "mse": jnp.mean((pred_BTHWC - target_BTHWC) ** 2),
        "codebook_usage": aux["usage"],
        "codebook_perplexity": aux["perplexity"],
    }


tokenizer_eval_step = vq_reconstruction_eval_step
lam_eval_step = functools.partial(vq_reconstruction_eval_step, target_frames=slice(1, None))


def global_norm(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))


def skip_nonfinite_updates(step_fn: Callable) -> Callable:
    """`step_fn` that keeps the previous parameters, optimizer and model state when the loss or
    any new parameter is NaN/Inf (the step counter still advances, as the data did), and adds
    `skipped_update` (1.0 or 0.0) to the metrics."""

    @functools.wraps(step_fn)
    def guarded(state: TrainState, batch: Batch, rng: jax.Array):
        new_state, metrics = step_fn(state, batch, rng)
        finite = jnp.isfinite(metrics["loss"])
        for leaf in jax.tree.leaves(new_state.params):
            finite &= jnp.all(jnp.isfinite(leaf))
        kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        kept = kept.replace(step=new_state.step)
        return kept, {**metrics, "skipped_update": 1.0 - finite.astype(jnp.float32)}

    return guarded


def jit_train_step(
    step_fn: Callable,
    mesh: Mesh,
    state_shardings: Any,
    rules: LogicalRules,
    *,
    skip_nonfinite: bool = False,
) -> Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]:
    """Compiles `step_fn(state, batch, rng)` with explicit shardings and a donated state.

    The logical-axis rules and the mesh are in scope while tracing so that the model's
    `nn.with_logical_constraint` calls become real sharding constraints. `skip_nonfinite`
    wraps the step in `skip_nonfinite_updates`.
    """
    if skip_nonfinite:
        step_fn = skip_nonfinite_updates(step_fn)
    jitted = jax.jit(
        step_fn,
        in_shardings=(state_shardings, batch_sharding(mesh), replicated(mesh)),
        out_shardings=(state_shardings, replicated(mesh)),
        donate_argnums=0,
    )

    @functools.wraps(step_fn)
    def run(state: TrainState, batch: Batch, rng: jax.Array):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(state, batch, rng)

    run.lower = lambda *args: _lower_in_scope(jitted, mesh, rules, *args)  # for `genie plan`
    return run


def jit_eval_step(
    step_fn: Callable, mesh: Mesh, state_shardings: Any, rules: LogicalRules
) -> Callable[[TrainState, Batch], Metrics]:
    jitted = jax.jit(
        step_fn,
        in_shardings=(state_shardings, batch_sharding(mesh)),
        out_shardings=replicated(mesh),
    )

    def run(state: TrainState, batch: Batch) -> Metrics:
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return jitted(state, batch)

    return run


def _lower_in_scope(jitted, mesh: Mesh, rules: LogicalRules, *args):
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        return jitted.lower(*args)
