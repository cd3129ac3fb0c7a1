"""Exact per-device bytes of a train state on a mesh that need not exist.

The state's shapes come from `jax.eval_shape` of the task's init (nothing is allocated); the
shardings from the project's rules table (`genie_jax/train/sharding.py`) applied to an
`AbstractMesh` of the requested sizes; each leaf's per-device shape from
`NamedSharding.shard_shape`. This is the same path `genie train` takes, minus the devices.
"""

import math
from collections.abc import Mapping

import jax
import optax
from jax.sharding import AbstractMesh, NamedSharding

from genie_jax.train.mesh import MESH_AXES
from genie_jax.train.sharding import LogicalRules
from genie_jax.train.state import abstract_train_state, freeze_groups, make_optimizer
from genie_jax.train.tasks import Task


class PlanError(ValueError):
    """A plan that cannot be made (bad mesh, unknown device, shapes the mesh cannot split)."""


def parse_mesh(text: str) -> dict[str, int]:
    """`"data=16,fsdp=16,tensor=1"` -> {"data": 16, "fsdp": 16, "tensor": 1}; axes not named
    are 1."""
    sizes = dict.fromkeys(MESH_AXES, 1)
    seen = set()
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in MESH_AXES or name in seen:
            raise PlanError(
                f"--mesh wants comma-separated AXIS=SIZE with AXIS in {', '.join(MESH_AXES)}, "
                f"each at most once (e.g. data=16,fsdp=16,tensor=1), got {text!r}"
            )
        try:
            size = int(value)
        except ValueError:
            size = 0
        if size < 1:
            raise PlanError(f"--mesh: {name} needs a positive integer size, got {value!r}")
        sizes[name] = size
        seen.add(name)
    return sizes


def abstract_mesh(sizes: Mapping[str, int]) -> AbstractMesh:
    return AbstractMesh(tuple(sizes[a] for a in MESH_AXES), MESH_AXES)


def _bytes(leaf) -> int:
    return math.prod(leaf.shape) * leaf.dtype.itemsize


def _shard_bytes(leaf, sharding: NamedSharding) -> int:
    return math.prod(sharding.shard_shape(leaf.shape)) * leaf.dtype.itemsize


def _uneven(leaf, sharding: NamedSharding) -> str | None:
    """Why `sharding` cannot split `leaf` evenly (jit refuses uneven shardings), or None."""
    mesh_sizes = sharding.mesh.shape
    for dim, axes in zip(leaf.shape, tuple(sharding.spec) + (None,) * leaf.ndim):
        if axes is None:
            continue
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        parts = math.prod(mesh_sizes[a] for a in axes)
        if dim % parts:
            return f"{dim} over {'x'.join(axes)}={parts}"
    return None


def task_optimizer(task: Task) -> optax.GradientTransformation:
    """The optimizer `genie train` builds for this task (its state shapes are what matter)."""
    section = task.section
    tx = make_optimizer(total_steps=section.num_steps, **section.optimizer.to_dict())
    return freeze_groups(tx, task.frozen)


def state_bytes(task: Task, sizes: Mapping[str, int], rules: LogicalRules) -> dict:
    """Per-device and global bytes of params / optimizer state / model state, and the
    gradients' per-device bytes (the trainable params' shards).

    Raises PlanError naming the parameters the mesh cannot split evenly.
    """
    tx = task_optimizer(task)
    abstract, _ = abstract_train_state(
        task.model, tx, task.example_inputs, abstract_mesh(sizes), rules
    )
    uneven = []
    for kind in ("params", "opt_state", "model_state"):
        for path, leaf in jax.tree_util.tree_flatten_with_path(getattr(abstract, kind))[0]:
            reason = _uneven(leaf, leaf.sharding)
            if reason:
                uneven.append(f"{kind}{jax.tree_util.keystr(path)} {tuple(leaf.shape)}: {reason}")
    if uneven:
        raise PlanError(
            f"the mesh {dict(sizes)} cannot split {len(uneven)} state arrays evenly and jit "
            f"refuses uneven shardings, so `genie train` would fail at init; first: {uneven[0]}"
        )
    trainable = {g: p for g, p in abstract.params.items() if g not in task.frozen}

    def per_device(tree) -> int:
        return sum(_shard_bytes(x, x.sharding) for x in jax.tree.leaves(tree))

    def count(tree) -> int:
        return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))

    return {
        "param_count": count(abstract.params),
        "trainable_param_count": count(trainable),
        "per_device": {
            "params": per_device(abstract.params),
            "optimizer": per_device(abstract.opt_state),
            "model_state": per_device(abstract.model_state) + _bytes(abstract.step),
            "gradients": per_device(trainable),
        },
        "global": {
            "params": sum(_bytes(x) for x in jax.tree.leaves(abstract.params)),
            "optimizer": sum(_bytes(x) for x in jax.tree.leaves(abstract.opt_state)),
        },
    }
