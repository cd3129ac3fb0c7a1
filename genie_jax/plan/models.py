"""FLOPs and activation bytes of each model's train step, built from its ST stacks.

`step_costs` describes what one device does in one `genie train <model>` step (Genie §2.1):
  tokenizer  encoder + decoder stacks on T x N patches, patch/latent projections, VQ lookup;
  lam        encoder on T x (N + 1) (one action token per frame), decoder on (T - 1) x N;
  dynamics   the frozen tokenizer encoder and LAM encoder run forward only (the LAM trains too
             when `cotrain_lam`), then the MaskGIT transformer on T x (N [+ 1 action token])
             and the vocabulary head, trained on masked-token cross-entropy.
Outside the stacks only the largest buffers are counted (patches, latents, the head's logits).
"""

import dataclasses

import jax.numpy as jnp
import ml_collections

from genie_jax.dynamics import DynamicsConfig
from genie_jax.lam import LAMConfig
from genie_jax.plan.st_stack import F32, StackShape, layer_params, stack_flops, stack_memory
from genie_jax.tokenizer import TokenizerConfig
from genie_jax.train.tasks import dataclass_from_config


@dataclasses.dataclass(frozen=True)
class Layout:
    """How the mesh splits the work: clips per device and the tensor-parallel size."""

    batch: int  # clips on one device
    tensor: int = 1
    fsdp: int = 1  # > 1: each layer's weights are gathered before use


@dataclasses.dataclass
class StepCosts:
    stacks: dict[str, tuple[StackShape, bool]]  # name -> (shape, trainable), in forward order
    other_flops: float  # projections, heads, VQ distances
    other_bytes: float  # inputs and projection residuals outside the stacks
    head_bytes: float = 0.0  # buffers live only while the output head runs backward

    def flops(self, *, xla_convention: bool = False) -> float:
        """Matmul FLOPs of the step; `xla_convention` counts a scanned stack's body once, as
        XLA's cost analysis does."""
        total = self.other_flops
        for stack, trainable in self.stacks.values():
            layers = 1 if (xla_convention and stack.scan) else None
            total += stack_flops(stack, trainable=trainable, count_layers=layers)
        return total

    def peak_bytes(self, layout: Layout, gradients: int, param_bytes: int) -> dict[str, float]:
        """Peak bytes of activations and gradients together, phase by phase of the backward
        pass (the last stack first). The output head's phase comes first: every stack still
        holds its residuals. In the phase of stack k, stacks 1..k-1 hold theirs, stack k its
        layers' residuals and one layer's working set (under FSDP also that layer's gathered
        weights), and the gradients of stacks k..n exist. The optimizer's phase is last (all
        gradients, no activations).

        `gradients`: the per-device gradient bytes (exact, from the state); each stack's share
        is its share of the trainable parameters.
        Returns the peak `total`, the `activations` and `gradients` live then, and its `phase`.
        """
        trained = [(n, s) for n, (s, t) in self.stacks.items() if t]
        counts = {n: s.layers * layer_params(s) for n, s in trained}
        share = {n: gradients * c / max(sum(counts.values()), 1) for n, c in counts.items()}
        live_grads = max(gradients - sum(share.values()), 0.0)  # heads and embeddings
        memory = {n: stack_memory(s) for n, s in trained}
        held = {n: m["layers"] + m["final_norm"] for n, m in memory.items()}
        phases = [("head", sum(held.values()) + self.head_bytes, live_grads)]
        for k in reversed(range(len(trained))):
            name, stack = trained[k]
            live_grads += share[name]
            working = memory[name]["working"]
            if layout.fsdp > 1:
                working += layer_params(stack) / layout.tensor * param_bytes
            earlier = sum(held[n] for n, _ in trained[:k])
            phases.append((name, earlier + memory[name]["layers"] + working, live_grads))
        phases.append(("optimizer", 0.0, float(gradients)))
        phase, activations, grads = max(phases, key=lambda p: p[1] + p[2])
        activations += self.other_bytes
        return {
            "total": activations + grads,
            "activations": activations,
            "gradients": grads,
            "phase": phase,
        }


def _stack(cfg, layers: int, dim: int, heads: int, frames: int, tokens: int, layout: Layout):
    """The shape of one stack of a model whose config has the shared stack fields."""
    return StackShape(
        layers=layers,
        dim=dim,
        heads=heads,
        mlp_dim=cfg.mlp_ratio * dim,
        frames=frames,
        tokens=tokens,
        batch=layout.batch,
        qk_norm=cfg.qk_norm,
        compute_bytes=jnp.dtype(cfg.dtype).itemsize,
        param_bytes=jnp.dtype(cfg.param_dtype).itemsize,
        scan=cfg.scan_layers,
        remat=cfg.remat_policy,
        tensor=layout.tensor,
    )


def _patch_bytes(cfg, positions: float) -> float:
    """The fp32 patches a pixel model keeps for its patch embedding's weight gradient."""
    return positions * cfg.patch_size**2 * cfg.channels * F32


def tokenizer_costs(cfg: TokenizerConfig, frames: int, layout: Layout, *, trainable=True):
    n, b = cfg.num_tokens, layout.batch
    patch = cfg.patch_size**2 * cfg.channels
    enc = _stack(cfg, cfg.encoder_layers, cfg.encoder_dim, cfg.encoder_heads, frames, n, layout)
    positions = b * frames * n
    encode = 2 * patch * cfg.encoder_dim + 2 * cfg.encoder_dim * cfg.latent_dim
    vq = 2 * cfg.latent_dim * cfg.codebook_size  # distances to every code, forward only
    if not trainable:  # the dynamics run only encodes
        return StepCosts({"tokenizer.encoder": (enc, False)}, positions * (encode + vq), 0.0)
    dec = _stack(cfg, cfg.decoder_layers, cfg.decoder_dim, cfg.decoder_heads, frames, n, layout)
    decode = 2 * cfg.latent_dim * cfg.decoder_dim + 2 * cfg.decoder_dim * patch
    # backward: 2x, except that the patch embedding needs no input gradient
    flops = positions * (3 * (encode + decode) - 2 * patch * cfg.encoder_dim + vq)
    latents = positions * 4 * cfg.latent_dim * F32  # the quantizer's latents and codes
    return StepCosts(
        {"tokenizer.encoder": (enc, True), "tokenizer.decoder": (dec, True)},
        flops,
        _patch_bytes(cfg, positions) + latents,
    )


def lam_costs(cfg: LAMConfig, frames: int, layout: Layout, *, trainable=True, encoder_only=False):
    n, b = cfg.num_tokens, layout.batch
    patch = cfg.patch_size**2 * cfg.channels
    enc = _stack(cfg, cfg.encoder_layers, cfg.encoder_dim, cfg.encoder_heads, frames, n + 1, layout)
    transitions = b * (frames - 1)
    encode = b * frames * n * 2 * patch * cfg.encoder_dim + transitions * (
        2 * cfg.encoder_dim * cfg.latent_dim + 2 * cfg.latent_dim * cfg.num_actions
    )
    if encoder_only:
        return StepCosts({"lam.encoder": (enc, False)}, encode, 0.0)
    dec = _stack(cfg, cfg.decoder_layers, cfg.decoder_dim, cfg.decoder_heads, frames - 1, n, layout)
    decode = transitions * n * (2 * patch * cfg.decoder_dim + 2 * cfg.decoder_dim * patch)
    decode += transitions * 2 * cfg.latent_dim * cfg.decoder_dim
    factor = 3 if trainable else 1
    patches = _patch_bytes(cfg, b * frames * n + transitions * n)
    return StepCosts(
        {"lam.encoder": (enc, trainable), "lam.decoder": (dec, trainable)},
        factor * (encode + decode),
        patches if trainable else 0.0,
    )


def dynamics_costs(config: ml_collections.ConfigDict, layout: Layout) -> StepCosts:
    tok = dataclass_from_config(TokenizerConfig, config.tokenizer.model)
    lam = dataclass_from_config(LAMConfig, config.lam.model)
    dyn = dataclass_from_config(DynamicsConfig, config.dynamics.model)
    frames, n = config.clip_len, tok.num_tokens
    parts = [tokenizer_costs(tok, frames, layout, trainable=False)]
    cotrain = config.dynamics.cotrain_lam
    parts.append(lam_costs(lam, frames, layout, trainable=cotrain, encoder_only=not cotrain))
    tokens = n + (dyn.action_mode == "prepend")
    stack = _stack(dyn, dyn.num_layers, dyn.dim, dyn.num_heads, frames, tokens, layout)
    positions = layout.batch * frames * n
    vocab = tok.codebook_size / layout.tensor  # the head's vocabulary is tensor-parallel
    head = 3 * positions * 2 * dyn.dim * vocab
    stacks = {}
    for part in parts:  # the frozen encoders run first
        stacks.update(part.stacks)
    stacks["dynamics"] = (stack, True)
    return StepCosts(
        stacks,
        head + sum(p.other_flops for p in parts),
        sum(p.other_bytes for p in parts),
        # logits, their softmax and their cotangent, fp32, while the head runs backward
        head_bytes=3 * positions * vocab * F32,
    )


def step_costs(config: ml_collections.ConfigDict, model: str, layout: Layout) -> StepCosts:
    """What one device computes and keeps in one train step of `model`."""
    if model == "tokenizer":
        cfg = dataclass_from_config(TokenizerConfig, config.tokenizer.model)
        return tokenizer_costs(cfg, config.clip_len, layout)
    if model == "lam":
        cfg = dataclass_from_config(LAMConfig, config.lam.model)
        return lam_costs(cfg, config.clip_len, layout)
    if model == "dynamics":
        return dynamics_costs(config, layout)
    raise ValueError(f"unknown model {model!r}")
