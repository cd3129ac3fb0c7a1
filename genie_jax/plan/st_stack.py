"""Analytic cost of one ST-transformer stack (Genie §2, Fig. 4) in a training step.

A block (`genie_jax/nn/st_transformer.py`) is LayerNorm -> spatial attention over the N tokens of
a frame, LayerNorm -> causal temporal attention over the T frames of a patch, LayerNorm -> MLP
(D -> F -> D, GELU). Everything here is per device: the batch is the per-device batch, and
heads and MLP width are divided by the tensor-parallel size.

FLOPs count matmuls only (2 per multiply-add: projections, QK^T and PV, the MLP); elementwise
work (norms, softmax, GELU, Adam) is a few percent at these widths and is left out. Causal
temporal attention is counted in full (T x T): XLA's attention computes every score and masks.

Memory counts what autodiff keeps for the backward pass (the residuals of the jaxpr), per token
and per layer, under each remat policy; `tests/test_plan.py` checks the count against
`jax.ad_checkpoint` residuals of a real block. XLA may keep a little less (it fuses some
elementwise chains) or a little more (layout copies); `genie plan --xla` shows both.
"""

import dataclasses

F32 = 4  # bytes: LayerNorm / RMSNorm statistics and softmax exponentials are fp32 throughout


@dataclasses.dataclass(frozen=True)
class StackShape:
    """One `STTransformer` as it runs on one device."""

    layers: int
    dim: int  # D
    heads: int  # K
    mlp_dim: int  # F
    frames: int  # T (temporal sequence length)
    tokens: int  # N (spatial sequence length, a prepended token included)
    batch: int  # clips on this device
    qk_norm: bool = False
    compute_bytes: int = 4  # 2 for bfloat16
    param_bytes: int = 4
    scan: bool = False
    remat: str = "none"  # a key of genie_jax.nn.st_transformer.REMAT_POLICIES
    tensor: int = 1  # tensor-parallel size: heads and F are split over it

    @property
    def positions(self) -> int:
        """Tokens this device pushes through every layer: B * T * N."""
        return self.batch * self.frames * self.tokens

    @property
    def local_heads(self) -> float:
        return self.heads / self.tensor

    @property
    def local_mlp(self) -> float:
        return self.mlp_dim / self.tensor


def layer_params(s: StackShape) -> int:
    """Parameters of one block (global): two attentions, one MLP, three LayerNorms."""
    attention = 4 * s.dim * s.dim + (2 * s.dim // s.heads if s.qk_norm else 0)
    mlp = 2 * s.dim * s.mlp_dim + s.mlp_dim + s.dim
    return 2 * attention + mlp + 3 * 2 * s.dim


def forward_flops_per_position(s: StackShape) -> dict[str, float]:
    """Matmul FLOPs of one block's forward pass per position, on this device's shard."""
    d, k, f = s.dim, s.local_heads, s.local_mlp
    head_dim = s.dim / s.heads
    return {
        # qkv [D, 3, K, Dh] and out [K, Dh, D] of both attentions
        "projections": 2 * 2 * (3 * d * k * head_dim + k * head_dim * d),
        # QK^T and PV: each position meets every position of its sequence, per local head
        "attention": 2 * 2 * k * head_dim * (s.tokens + s.frames),
        "mlp": 2 * 2 * d * f,
    }


def stack_flops(s: StackShape, *, trainable: bool = True, count_layers: int | None = None) -> float:
    """FLOPs of the stack in one step: forward, backward (2x) and remat recomputation.

    A frozen stack (`trainable=False`) runs forward only. `count_layers` overrides the layer
    count (XLA's cost analysis counts a scanned body once).
    """
    per_position = forward_flops_per_position(s)
    forward = sum(per_position.values())
    if trainable:
        recompute = {"none": 0.0, "dots": 0.0, "dots_no_batch": per_position["attention"]}
        factor = 3.0 * forward + recompute.get(s.remat, forward)
    else:
        factor = forward
    layers = s.layers if count_layers is None else count_layers
    return factor * s.positions * layers


def _attention_residuals(s: StackShape, seq: int, causal: bool) -> tuple[float, float, float]:
    """(compute-dtype, fp32, bool) elements per position that one attention keeps."""
    d, k = s.dim / s.tensor, s.local_heads
    compute = 4 * d + k * seq  # q, k, v, attention output; probabilities (cast back)
    fp32 = k * seq + 2 * k  # exponentials, softmax sums
    if s.qk_norm:
        fp32 += 2 * (3 * d + 2 * k)  # RMSNorm of q and of k, in fp32
    if causal:
        fp32 += k * seq  # masked scores
    return compute, fp32, (k * seq if causal else 0.0)


def layer_residual_bytes(s: StackShape, policy: str | None = None) -> float:
    """Bytes one block keeps for its backward pass on this device, under `policy`
    (default: the stack's own). The first layer of an unscanned stack keeps one D-vector per
    position less (its input is the stack's input); that difference is ignored."""
    policy = s.remat if policy is None else policy
    d, f, c = s.dim, s.local_mlp, s.compute_bytes
    positions = s.positions
    if policy == "full":
        return positions * d * c  # the block input only
    dots_no_batch = (3 * d / s.tensor + d) * 2 + f + d  # qkv and out of both, MLP up and down
    if policy == "dots_no_batch":
        return positions * dots_no_batch * c
    if policy == "dots":
        # plus the batched dots: attention scores (fp32) and the PV products
        scores = s.local_heads * (s.tokens + s.frames)
        return positions * ((dots_no_batch + 2 * d / s.tensor) * c + scores * F32)
    if policy != "none":
        raise ValueError(f"unknown remat policy {policy!r}")
    layer_norms = 3 * (3 * d + 4)  # x - mean, x^2, normalized output, statistics
    spatial = _attention_residuals(s, s.tokens, causal=False)
    temporal = _attention_residuals(s, s.frames, causal=True)
    # the two attention inputs (reshaped / transposed copies), the MLP input, the MLP hidden
    # state and five elementwise GELU intermediates
    compute = 3 * d + 6 * f + spatial[0] + temporal[0]
    fp32 = layer_norms + spatial[1] + temporal[1]
    weights = 0.0
    if s.compute_bytes != s.param_bytes:  # compute-dtype copies of the weight matrices
        weights = (2 * 4 * d * d + 2 * d * s.mlp_dim) / s.tensor * c
    return positions * (compute * c + fp32 * F32 + spatial[2] + temporal[2]) + weights


def stack_memory(s: StackShape) -> dict[str, float]:
    """Bytes of the stack's activations during the backward pass.

    `layers`: what all its layers keep until their backward pass; `final_norm`: the final
    LayerNorm's residuals (consumed before the layers' backward starts); `working`: what one
    layer's backward needs on top: with remat, that layer's full set of residuals, recomputed;
    always two D-wide cotangents.
    """
    d, c = s.dim, s.compute_bytes
    working = 2 * s.positions * d * c
    if s.remat != "none":
        working += layer_residual_bytes(s, "none")
    return {
        "layers": s.layers * layer_residual_bytes(s),
        "final_norm": s.positions * (3 * d + 4) * F32,
        "working": working,
    }
