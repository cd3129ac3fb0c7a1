"""Training: train state, pure steps, mesh, the sharding rules table, checkpoints, logging."""
