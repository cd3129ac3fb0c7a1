"""Train steps on a mesh for the sharded == unsharded tests.

Plain SGD at learning rate 1 in those tests: equal parameters after two steps then mean equal
gradients. The reference run initializes on one device; the runs on bigger meshes start from
that same state placed in their own shardings (initializing in place is tested on its own, in
test_sharded_step.py), which also spares an init compile per mesh.
"""

import jax
import numpy as np

from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import abstract_train_state, create_train_state
from genie_jax.train.steps import jit_train_step


def run_steps(model, tx, example, step_fn, mesh_shape, batch: dict, *, start=None, steps=2):
    """(losses, initial state on the host, final params on the host).

    `start`: a host state to place on the mesh instead of initializing (key 0)."""
    mesh = make_mesh(mesh_shape, jax.devices()[: int(np.prod(mesh_shape))])
    if start is None:
        state, shardings = create_train_state(
            model, tx, example, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
        )
    else:
        abstract, shardings = abstract_train_state(model, tx, example, mesh, LOGICAL_AXIS_RULES)
        # `start`'s arrays in this run's state (its own `apply_fn` and `tx`), then sharded.
        state = jax.tree.unflatten(jax.tree.structure(abstract), jax.tree.leaves(start))
        state = jax.device_put(state, shardings)
    initial = jax.device_get(state)
    step = jit_train_step(step_fn, mesh, shardings, LOGICAL_AXIS_RULES)
    losses = []
    for _ in range(steps):
        sharded = {k: jax.device_put(v, batch_sharding(mesh)) for k, v in batch.items()}
        state, metrics = step(state, sharded, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    return losses, initial, jax.device_get(state.params)


def max_abs_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))
