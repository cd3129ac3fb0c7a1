"""The one table that maps logical axis names to mesh axes.

Model code names axes logically (`nn.with_logical_partitioning`, `nn.with_logical_constraint`);
only this file says how they land on the `data` / `fsdp` / `tensor` mesh. Parameters are
sharded FSDP-style over `fsdp` on their model dimension and tensor-parallel over `tensor` on
heads / MLP width; activations are sharded over (`data`, `fsdp`) on the batch.
A config may replace the table with `config.logical_axis_rules`.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LogicalRules = Sequence[tuple[str, str | tuple[str, ...] | None]]

LOGICAL_AXIS_RULES: LogicalRules = (
    # Activations at block boundaries.
    ("act_batch", ("data", "fsdp")),
    ("act_time", None),
    ("act_tokens", None),
    ("act_embed", None),
    # Parameters.
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("head_dim", None),
    ("qkv", None),
    ("patch", None),
    ("conv_height", None),  # convolution kernels' spatial axes
    ("conv_width", None),
    ("code", None),
    ("codebook", None),
    ("vocab", "tensor"),
    ("actions", None),  # action logits (LAM codes, WAM real actions): a handful
    ("time", None),
    ("tokens", None),
    ("layers", None),
)


def rules_from_config(rules: Sequence[Sequence] | None) -> LogicalRules:
    """The table, or a config's replacement for it (lists from JSON become tuples)."""
    if rules is None:
        return LOGICAL_AXIS_RULES
    return tuple((name, tuple(axes) if isinstance(axes, list) else axes) for name, axes in rules)


def logical_to_shardings(abstract_tree, mesh: Mesh, rules: LogicalRules):
    """Shardings for a tree of (boxed) abstract values from `jax.eval_shape(init)`."""
    specs = nn.get_partition_spec(abstract_tree)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis over every data-parallel mesh axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(("data", "fsdp")))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def describe(tree_of_shardings) -> dict[str, str]:
    """Path -> partition spec string, for logs and `genie plan`."""
    flat = jax.tree_util.tree_flatten_with_path(tree_of_shardings)[0]
    return {jax.tree_util.keystr(path): str(s.spec) for path, s in flat}
