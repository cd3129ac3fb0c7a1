"""ST-ViViT VQ-VAE video tokenizer (Genie §2.1)."""

from genie_jax.tokenizer.config import TokenizerConfig
from genie_jax.tokenizer.model import Tokenizer

__all__ = ["Tokenizer", "TokenizerConfig"]
