"""Parameter trees compared by path and shape: the checks that run before a restore, so a
checkpoint that does not fit the config is named in one line instead of an orbax traceback."""

from typing import Any

import jax


def path_name(path: tuple) -> str:
    """ "encoder/block_0/mlp/up/kernel": one spelling for dict keys, list indices and named
    tuple fields (orbax's metadata stores a named tuple's fields as dict keys)."""
    parts = []
    for key in path:
        for attribute in ("key", "idx", "name"):
            if hasattr(key, attribute):
                parts.append(str(getattr(key, attribute)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{"encoder/block_0/...": shape} for every array leaf (arrays, ShapeDtypeStructs, or
    orbax metadata)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_name(path): tuple(leaf.shape) for path, leaf in flat}


def describe_mismatch(
    want: dict[str, tuple[int, ...]], have: dict[str, tuple[int, ...]]
) -> list[str]:
    """One line per differing path, in path order: missing, extra, or two shapes."""
    problems = []
    for key in sorted(set(want) | set(have)):
        if key not in have:
            problems.append(f"{key}: missing from the checkpoint")
        elif key not in want:
            problems.append(f"{key}: in the checkpoint but not in this model")
        elif want[key] != have[key]:
            problems.append(f"{key}: checkpoint {have[key]}, this config {want[key]}")
    return problems
