"""Frame-by-frame autoregressive rollouts of the dynamics model, with and without a KV cache.

Frame t (from the first frame after the prompt) is decoded by MaskGIT given frames 0..t-1 and
the per-frame action ã_{t-1}. Two paths give the same tokens for the same rng:

- `rollout_full`: the reference. Every MaskGIT step runs the whole prefix 0..t through the
  model (what Jasmine does: 25 full passes per frame).
- `rollout_cached`: the prompt is run once (prefill) and each layer's temporal keys and values
  are kept; every MaskGIT step of frame t runs frame t alone against that cache, and one more
  pass with the final tokens appends frame t's keys and values. A frame costs steps + 1
  single-frame passes instead of steps passes over t + 1 frames.

Frame t uses rng `fold_in(rng, t)` in both paths.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from genie_jax.dynamics.model import DynamicsModel, frame_actions
from genie_jax.maskgit.decode import SamplingConfig, decode_frame
from genie_jax.nn import KVCache


def check_actions(actions: np.ndarray | jax.Array, num_actions: int) -> np.ndarray:
    """Concrete latent actions -> int32 array, or a ValueError naming the bad ones."""
    actions = np.asarray(actions)
    if actions.size and not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"latent actions must be integers, got dtype {actions.dtype}")
    bad = actions[(actions < 0) | (actions >= num_actions)]
    if bad.size:
        raise ValueError(
            f"latent action(s) {sorted(set(bad.tolist()))} outside 0..{num_actions - 1} "
            f"(the LAM has {num_actions} codes)"
        )
    return actions.astype(np.int32)


@dataclasses.dataclass
class CachedState:
    """A rollout in progress: the KV cache and the index of the next frame."""

    cache: KVCache
    next_frame: int


class Sampler:
    """Jitted MaskGIT rollouts for one dynamics model (params are passed per call)."""

    def __init__(self, model: DynamicsModel, sampling: SamplingConfig):
        self.model = model
        self.sampling = sampling
        self._prefill = jax.jit(self._prefill_impl, static_argnames="capacity")
        self._next_frame = jax.jit(self._next_frame_impl)
        self._full_frame = jax.jit(self._full_frame_impl)

    # -- shared -------------------------------------------------------------------------------

    def _decode(self, logits_fn, batch: int, rng: jax.Array) -> jax.Array:
        num_tokens = self.model.num_tokens
        blank_BN = jnp.full((batch, num_tokens), self.model.mask_id, jnp.int32)
        return decode_frame(
            logits_fn, blank_BN, rng, mask_id=self.model.mask_id, sampling=self.sampling
        )

    def _check(self, prompt_BPN, actions_BA, num_frames: int) -> tuple[jax.Array, jax.Array]:
        prompt_BPN = jnp.asarray(prompt_BPN, jnp.int32)
        actions = check_actions(actions_BA, self.model.num_actions)
        batch, prompt_len = prompt_BPN.shape[:2]
        if not 1 <= prompt_len < num_frames <= self.model.config.max_frames:
            raise ValueError(
                f"need 1 <= prompt frames ({prompt_len}) < num_frames ({num_frames}) <= "
                f"max_frames ({self.model.config.max_frames})"
            )
        if actions.shape != (batch, num_frames - 1):
            raise ValueError(
                f"a {num_frames}-frame rollout needs actions [B={batch}, {num_frames - 1}] "
                f"(one per transition), got {actions.shape}"
            )
        return prompt_BPN, frame_actions(jnp.asarray(actions), self.model.num_actions)

    # -- cached path --------------------------------------------------------------------------

    def _prefill_impl(self, params, prompt_BPN, frame_actions_BP, *, capacity: int) -> KVCache:
        cache = self.model.empty_cache(prompt_BPN.shape[0], capacity)
        _, cache = self.model.apply(
            {"params": params}, prompt_BPN, frame_actions_BP, kv_cache=cache, cache_index=0
        )
        return cache

    def _next_frame_impl(self, params, cache, action_B, frame_index, rng):
        action_B1 = action_B[:, None]

        def run(tokens_BN, cache):
            logits_B1NV, cache = self.model.apply(
                {"params": params},
                tokens_BN[:, None],
                action_B1,
                kv_cache=cache,
                cache_index=frame_index,
            )
            return logits_B1NV[:, 0], cache

        frame_BN = self._decode(lambda tokens_BN: run(tokens_BN, cache)[0], action_B.shape[0], rng)
        _, cache = run(frame_BN, cache)  # append the finished frame's keys and values
        return frame_BN, cache

    def start(self, params, prompt_BPN, frame_actions_BP, *, capacity: int) -> CachedState:
        """Runs the prompt through the model once; `frame_actions_BP` as from `frame_actions`."""
        cache = self._prefill(params, prompt_BPN, frame_actions_BP, capacity=capacity)
        return CachedState(cache=cache, next_frame=prompt_BPN.shape[1])

    def step(self, params, state: CachedState, action_B, rng) -> tuple[jax.Array, CachedState]:
        """Decodes the next frame [B, N] given the transition action into it."""
        if state.next_frame >= state.cache[0].shape[2]:
            raise ValueError(f"the KV cache holds {state.cache[0].shape[2]} frames and is full")
        action_B = check_actions(action_B, self.model.num_actions)
        frame_rng = jax.random.fold_in(rng, state.next_frame)
        frame_BN, cache = self._next_frame(
            params, state.cache, jnp.asarray(action_B), state.next_frame, frame_rng
        )
        return frame_BN, CachedState(cache=cache, next_frame=state.next_frame + 1)

    def rollout_cached(self, params, prompt_BPN, actions_BA, rng, *, num_frames: int):
        """Prompt [B, P, N] + transition actions [B, num_frames-1] -> tokens [B, num_frames, N]."""
        prompt_BPN, frame_actions_BT = self._check(prompt_BPN, actions_BA, num_frames)
        prompt_len = prompt_BPN.shape[1]
        state = self.start(
            params, prompt_BPN, frame_actions_BT[:, :prompt_len], capacity=num_frames
        )
        frames = [prompt_BPN]
        for t in range(prompt_len, num_frames):
            frame_BN, state = self.step(params, state, np.asarray(frame_actions_BT[:, t]), rng)
            frames.append(frame_BN[:, None])
        return jnp.concatenate(frames, axis=1)

    # -- reference path -----------------------------------------------------------------------

    def _full_frame_impl(self, params, context_BtN, frame_actions_Bt1, rng):
        def logits_fn(tokens_BN):
            sequence_BTN = jnp.concatenate([context_BtN, tokens_BN[:, None]], axis=1)
            logits_BTNV = self.model.apply({"params": params}, sequence_BTN, frame_actions_Bt1)
            return logits_BTNV[:, -1]

        return self._decode(logits_fn, context_BtN.shape[0], rng)

    def rollout_full(self, params, prompt_BPN, actions_BA, rng, *, num_frames: int):
        """The reference: same result as `rollout_cached`, every step over the whole prefix."""
        prompt_BPN, frame_actions_BT = self._check(prompt_BPN, actions_BA, num_frames)
        tokens_BtN = prompt_BPN
        for t in range(prompt_BPN.shape[1], num_frames):
            frame_BN = self._full_frame(
                params, tokens_BtN, frame_actions_BT[:, : t + 1], jax.random.fold_in(rng, t)
            )
            tokens_BtN = jnp.concatenate([tokens_BtN, frame_BN[:, None]], axis=1)
        return tokens_BtN
