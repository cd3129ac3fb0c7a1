"""A tiny dynamics model and cheap random parameters, shared by the dynamics and MaskGIT tests."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.dynamics import DynamicsConfig, DynamicsModel

V, N, A = 32, 16, 6  # vocabulary, tokens per frame, latent actions
MAX_FRAMES = 6


def key(seed: int) -> jax.Array:
    return jax.random.key(seed, impl="rbg")  # compiles faster than threefry on CPU


def tiny_dynamics(action_mode: str = "add", scan_layers: bool = False, **overrides):
    config = DynamicsConfig(
        num_layers=2,
        dim=32,
        num_heads=2,
        mlp_ratio=2,
        max_frames=MAX_FRAMES,
        action_mode=action_mode,
        scan_layers=scan_layers,
        **overrides,
    )
    return DynamicsModel(config, vocab_size=V, num_tokens=N, num_actions=A)


def random_params(model: nn.Module, *inputs, seed: int = 0) -> dict:
    """Random parameters in the layout `model.init` would give, without compiling the init.

    Matrices ~ N(0, 0.2^2), vectors ~ N(0, 0.1^2), norm scales ~ 1 + N(0, 0.1^2): every weight
    (biases and norms included) is nonzero, so no path through the model is silently dead.
    """
    shapes = nn.meta.unbox(jax.eval_shape(model.init, key(0), *inputs))["params"]
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        names = [getattr(entry, "key", "") for entry in path]
        ndim = len(leaf.shape) - ("blocks" in names)  # nn.scan stacks a layer axis in front
        noise = rng.standard_normal(leaf.shape).astype(np.float32)
        if names[-1] == "scale":
            return jnp.asarray(1.0 + 0.1 * noise, leaf.dtype)
        return jnp.asarray((0.2 if ndim >= 2 else 0.1) * noise, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def random_tokens(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, shape, dtype=np.int32)


def random_actions(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, A, shape, dtype=np.int32)
