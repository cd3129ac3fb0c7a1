"""Neural-network building blocks shared by the tokenizer, LAM, dynamics model and WAM.

Shape legend, used in tensor names (`x_BTND`) and einsum strings throughout the project:

  B batch             T frames            H, W patch grid       N = H*W tokens per frame
  D model width       K attention heads   Dh head dim           F MLP width
  V codebook size     A latent actions    C pixel channels      L text tokens
  E latent (code) dim P patch pixels (p*p*C)
"""

from genie_jax.nn.attention import Attention
from genie_jax.nn.dense import logical_dense
from genie_jax.nn.patchify import check_video, patchify, unpatchify
from genie_jax.nn.posemb import (
    FactorizedPositionEmbedding,
    GridPositionEmbedding,
)
from genie_jax.nn.quantizer import VectorQuantizer, reset_dead_codes
from genie_jax.nn.rotary import apply_rotary, grid_rotary_angles, heads_with_rotary
from genie_jax.nn.st_transformer import (
    KVCache,
    STBlock,
    STTransformer,
    empty_kv_cache,
    stack_options,
)

__all__ = [
    "Attention",
    "apply_rotary",
    "heads_with_rotary",
    "grid_rotary_angles",
    "KVCache",
    "FactorizedPositionEmbedding",
    "GridPositionEmbedding",
    "STBlock",
    "STTransformer",
    "VectorQuantizer",
    "check_video",
    "logical_dense",
    "stack_options",
    "empty_kv_cache",
    "patchify",
    "reset_dead_codes",
    "unpatchify",
]
