"""genie_jax: Genie in JAX/Flax."""
