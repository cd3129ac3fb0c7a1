"""One process of the two-process test: `python multihost_worker.py PROCESS_ID PORT OUT`.

Runs two tokenizer train steps on a global (data=8) mesh spread over two processes with 4 CPU
devices each, talking through gloo, and writes the losses and a parameter checksum as JSON.
With PROCESS_ID -1 it runs the same thing in one process on 8 devices (the reference).
"""

import json
import os
import sys

process_id, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
devices_here = 8 if process_id < 0 else 4
os.environ["XLA_FLAGS"] = (
    f"--xla_force_host_platform_device_count={devices_here} "
    "--xla_cpu_collective_call_terminate_timeout_seconds=600"  # see tests/conftest.py
)

import jax

if process_id >= 0:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )

import jax.numpy as jnp
import numpy as np
import optax

from genie_jax.data.pipeline import to_global_batch
from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state
from genie_jax.train.steps import jit_train_step, tokenizer_train_step

config = TokenizerConfig(
    frame_size=16, patch_size=4, max_frames=4, encoder_layers=1, encoder_dim=32,
    encoder_heads=4, decoder_layers=1, decoder_dim=32, decoder_heads=4, codebook_size=32,
    latent_dim=8,
)  # fmt: skip
assert jax.device_count() == 8, jax.devices()
mesh = make_mesh((-1, 2, 1))
state, shardings = create_train_state(
    Tokenizer(config), optax.sgd(1.0), (jnp.zeros((1, 4, 16, 16, 3)),), jax.random.key(0),
    mesh, LOGICAL_AXIS_RULES,
)  # fmt: skip
step = jit_train_step(tokenizer_train_step, mesh, shardings, LOGICAL_AXIS_RULES)
global_video = np.random.default_rng(0).integers(0, 256, (8, 4, 16, 16, 3), dtype=np.uint8)
rows = slice(None) if process_id < 0 else slice(4 * process_id, 4 * process_id + 4)
losses = []
for _ in range(2):
    batch = to_global_batch({"video": global_video[rows]}, batch_sharding(mesh))
    state, metrics = step(state, batch, jax.random.key(1))
    losses.append(float(metrics["loss"]))
checksum = sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(state.params))
if jax.process_index() == 0:
    result = {"losses": losses, "checksum": checksum, "processes": jax.process_count()}
    with open(out, "w") as f:
        json.dump(result, f)
