"""XLA's own numbers for the real train step: compiled for simulated CPU devices, never run.

`compiled_costs` lowers `jit_train_step` (the step `genie train` runs, with its shardings and
donation) on a mesh of this process's devices and reads `cost_analysis()` (FLOPs per device)
and `memory_analysis()` (argument and temporary bytes per device).

`genie plan --xla` needs a mesh of simulated devices, whose count XLA fixes when the backend
starts; `run_in_subprocess` starts `python -m genie_jax.plan.xla_check` with
`--xla_force_host_platform_device_count` set and reads its JSON. CPU numbers are XLA's CPU
compiler's: TPU and GPU compilers fuse and schedule differently (they honour remat without
`scan_layers`, for one), so they check the analytic model, not the accelerator.
"""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections

from genie_jax.nn.attention import accelerator_attention
from genie_jax.plan.state_bytes import PlanError, task_optimizer
from genie_jax.train.mesh import MESH_AXES, make_mesh
from genie_jax.train.sharding import rules_from_config
from genie_jax.train.state import abstract_train_state
from genie_jax.train.steps import jit_train_step
from genie_jax.train.tasks import Task

MAX_DEVICES = 64  # simulated devices `--xla` will start; compiling for more takes too long


def compiled_costs(
    config: ml_collections.ConfigDict, task: Task, sizes: dict[str, int], batch: int
) -> dict:
    """Compiles `task`'s train step for a global batch of `batch` clips on the first
    data*fsdp*tensor devices of this process. Returns XLA's per-device numbers."""
    count = sizes["data"] * sizes["fsdp"] * sizes["tensor"]
    if count > jax.device_count():
        raise PlanError(f"the mesh needs {count} devices; this process has {jax.device_count()}")
    mesh = make_mesh(tuple(sizes[a] for a in MESH_AXES), jax.devices()[:count])
    rules = rules_from_config(config.get("logical_axis_rules"))
    abstract, shardings = abstract_train_state(
        task.model, task_optimizer(task), task.example_inputs, mesh, rules
    )
    channels = task.example_inputs[0].shape[-1]
    size = config.frame_size
    video = jax.ShapeDtypeStruct((batch, config.clip_len, size, size, channels), jnp.uint8)
    step = jit_train_step(task.train_step, mesh, shardings, rules)
    with accelerator_attention():  # the plan is for accelerators: no CPU-only chunking
        compiled = step.lower(abstract, {"video": video}, jax.random.key(0)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older jax returned one per program
    memory = compiled.memory_analysis()
    return {
        "flops_per_device": float(cost.get("flops", 0.0)),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
        "alias_bytes": int(memory.alias_size_in_bytes),
    }


def run_in_subprocess(
    config: ml_collections.ConfigDict, model: str, sizes: dict[str, int], batch: int
) -> dict:
    """`compiled_costs` in a fresh process with one simulated CPU device per mesh slot."""
    count = sizes["data"] * sizes["fsdp"] * sizes["tensor"]
    if count > MAX_DEVICES:
        raise PlanError(
            f"--xla compiles on simulated CPU devices, at most {MAX_DEVICES}; this mesh has "
            f"{count} (plan a smaller mesh with the same per-device shapes to check it)"
        )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    request = json.dumps(
        {"config": config.to_json(), "model": model, "sizes": sizes, "batch": batch}
    )
    done = subprocess.run(
        [sys.executable, "-m", "genie_jax.plan.xla_check"],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlanError(f"--xla: compiling the step failed: {tail}")
    return json.loads(lines[-1])


def _main() -> None:
    from genie_jax.plan.report import planning_task

    request = json.loads(sys.stdin.read())
    config = ml_collections.ConfigDict(json.loads(request["config"]))
    task = planning_task(config, request["model"])
    print(json.dumps(compiled_costs(config, task, request["sizes"], request["batch"])))


if __name__ == "__main__":
    _main()
