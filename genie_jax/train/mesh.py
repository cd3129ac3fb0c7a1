"""Device mesh with axes (data, fsdp, tensor) built from a config's `mesh_shape`."""

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh

MESH_AXES = ("data", "fsdp", "tensor")


def resolve_mesh_shape(mesh_shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replaces a single -1 by whatever fills `num_devices`; checks the product."""
    shape = [int(s) for s in mesh_shape]
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh_shape needs {len(MESH_AXES)} sizes {MESH_AXES}, got {shape}")
    if shape.count(-1) > 1:
        raise ValueError(f"mesh_shape may hold at most one -1, got {shape}")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh_shape sizes must be positive or -1, got {shape}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if num_devices % known:
            raise ValueError(f"mesh_shape {shape} does not divide {num_devices} devices")
        shape[shape.index(-1)] = num_devices // known
    if int(np.prod(shape)) != num_devices:
        raise ValueError(
            f"mesh_shape {shape} has {int(np.prod(shape))} devices but {num_devices} are present"
        )
    return tuple(shape)


def make_mesh(mesh_shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over all (global) devices, or over `devices` when given (tests use subsets)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(mesh_shape, len(devices))
    if len(devices) == jax.device_count():
        # Topology-aware placement on TPU slices; plain order elsewhere.
        return Mesh(mesh_utils.create_device_mesh(shape, devices=devices), MESH_AXES)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)
