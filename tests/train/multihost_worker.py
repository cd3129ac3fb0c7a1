"""One process of the two-process test: `python multihost_worker.py PROCESS_ID PORT OUT`.

Runs two tokenizer train steps and two dynamics train steps (frozen tokenizer and LAM, the
`genie train dynamics` step) on a global 8-device mesh spread over two processes with 4 CPU
devices each, talking through gloo, and writes each model's losses and a parameter checksum as
JSON.
With PROCESS_ID -1 it runs the same thing in one process on 8 devices (the reference).
"""

import json
import os
import sys

process_id, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
devices_here = 8 if process_id < 0 else 4
os.environ["XLA_FLAGS"] = (
    f"--xla_force_host_platform_device_count={devices_here} "
    "--xla_cpu_collective_call_terminate_timeout_seconds=600 "  # see tests/conftest.py
    "--xla_backend_optimization_level=0"  # as conftest's xla_flags (not importable here)
)

import jax

if process_id >= 0:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process_id
    )

import functools

import jax.numpy as jnp
import numpy as np
import optax

from genie_jax.data.pipeline import to_global_batch
from genie_jax.dynamics import DynamicsConfig
from genie_jax.genie_model import GenieModel
from genie_jax.lam import LAMConfig
from genie_jax.tokenizer import Tokenizer, TokenizerConfig
from genie_jax.train.dynamics_steps import dynamics_train_step
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import LOGICAL_AXIS_RULES, batch_sharding
from genie_jax.train.state import create_train_state, freeze_groups
from genie_jax.train.steps import jit_train_step, tokenizer_train_step

TOKENIZER = TokenizerConfig(
    frame_size=16, patch_size=4, max_frames=4, encoder_layers=1, encoder_dim=32,
    encoder_heads=4, decoder_layers=1, decoder_dim=32, decoder_heads=4, codebook_size=32,
    latent_dim=8,
)  # fmt: skip
LAM = LAMConfig(
    frame_size=16, patch_size=8, max_frames=4, encoder_layers=1, encoder_dim=32,
    encoder_heads=4, decoder_layers=1, decoder_dim=32, decoder_heads=4, num_actions=4,
    latent_dim=8,
)  # fmt: skip
DYNAMICS = DynamicsConfig(num_layers=1, dim=32, num_heads=4, max_frames=4)
assert jax.device_count() == 8, jax.devices()
mesh = make_mesh((-1, 2, 1))
video = jnp.zeros((1, 4, 16, 16, 3))
frozen = ("tokenizer", "lam")
models = {
    "tokenizer": (Tokenizer(TOKENIZER), optax.sgd(1.0), (video,), tokenizer_train_step),
    "dynamics": (
        GenieModel(TOKENIZER, LAM, DYNAMICS),
        freeze_groups(optax.sgd(1.0), frozen),
        (video, jnp.zeros((1, 4, TOKENIZER.num_tokens), bool)),
        functools.partial(
            dynamics_train_step, num_tokens=TOKENIZER.num_tokens, frozen=frozen,
            dead_code_threshold=1,
        ),
    ),
}  # fmt: skip
global_video = np.random.default_rng(0).integers(0, 256, (8, 4, 16, 16, 3), dtype=np.uint8)
rows = slice(None) if process_id < 0 else slice(4 * process_id, 4 * process_id + 4)
result = {"processes": jax.process_count()}
for name, (model, tx, example, step_fn) in models.items():
    state, shardings = create_train_state(
        model, tx, example, jax.random.key(0), mesh, LOGICAL_AXIS_RULES
    )
    step = jit_train_step(step_fn, mesh, shardings, LOGICAL_AXIS_RULES)
    losses = []
    for _ in range(2):
        batch = to_global_batch({"video": global_video[rows]}, batch_sharding(mesh))
        state, metrics = step(state, batch, jax.random.key(1))
        losses.append(float(metrics["loss"]))
    checksum = sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(state.params))
    result[name] = {"losses": losses, "checksum": checksum}
if jax.process_index() == 0:
    with open(out, "w") as f:
        json.dump(result, f)
