"""wam_jax: World Action Model on top of genie_jax (issue #5)."""
