"""Train state, optimizer, and sharded initialization.

The state's shardings come from the model's logical axis names: `jax.eval_shape(init)` gives the
boxed abstract state, the rules table maps it to `NamedSharding`s, and the real init is jitted
with those as `out_shardings`, so parameters are born sharded and never pass through one host.
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import Mesh

from genie_jax.train.sharding import LogicalRules, logical_to_shardings


class TrainState(struct.PyTreeNode):
    """Everything a step changes. `model_state` holds non-parameter collections (`vq_stats`)."""

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def apply_gradients(self, grads: Any, **changes: Any) -> "TrainState":
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


def make_optimizer(
    *,
    learning_rate: float,
    warmup_steps: int,
    total_steps: int,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 1e-4,
    grad_clip: float = 1.0,
    end_learning_rate_ratio: float = 0.1,
) -> optax.GradientTransformation:
    """AdamW with linear warmup and cosine decay, after global-norm clipping."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=min(warmup_steps, max(total_steps - 1, 0)),
        decay_steps=max(total_steps, 1),
        end_value=learning_rate * end_learning_rate_ratio,
    )
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay),
    )


def freeze_groups(
    tx: optax.GradientTransformation, frozen: tuple[str, ...]
) -> optax.GradientTransformation:
    """`tx` on every top-level parameter group except `frozen`, which get zero updates (and no
    optimizer state)."""
    if not frozen:
        return tx

    def labels(params):
        return {
            group: jax.tree.map(lambda _, g=group: "frozen" if g in frozen else "train", subtree)
            for group, subtree in params.items()
        }

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def _init_state_fn(
    model: nn.Module, tx: optax.GradientTransformation, example_inputs: tuple
) -> Callable[[jax.Array], TrainState]:
    def init(rng: jax.Array) -> TrainState:
        variables = dict(model.init(rng, *example_inputs, train=False))
        params = variables.pop("params")
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            model_state=variables,
            apply_fn=model.apply,
            tx=tx,
        )

    return init


def abstract_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_inputs: tuple,
    mesh: Mesh,
    rules: LogicalRules,
) -> tuple[TrainState, Any]:
    """(unboxed abstract state with `.sharding` set on every leaf, its shardings)."""
    init = _init_state_fn(model, tx, example_inputs)
    boxed = jax.eval_shape(init, jax.random.key(0))
    unboxed = nn.meta.unbox(boxed)
    # Frozen groups leave empty `MaskedNode`s in the optimizer state; the partition-spec
    # lookup turns each into a leaf, so put the empty node back.
    shardings = jax.tree.map(
        lambda node, sharding: node if _is_masked(node) else sharding,
        unboxed,
        logical_to_shardings(boxed, mesh, rules),
        is_leaf=_is_masked,
    )
    abstract = jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        unboxed,
        shardings,
    )
    return abstract, shardings


def _is_masked(node: Any) -> bool:
    return isinstance(node, optax.MaskedNode)


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_inputs: tuple,
    rng: jax.Array,
    mesh: Mesh,
    rules: LogicalRules,
) -> tuple[TrainState, Any]:
    """Initializes the state directly in its target sharding. Returns (state, shardings)."""
    init = _init_state_fn(model, tx, example_inputs)
    _, shardings = abstract_train_state(model, tx, example_inputs, mesh, rules)
    state = jax.jit(lambda r: nn.meta.unbox(init(r)), out_shardings=shardings)(rng)
    return state, shardings
