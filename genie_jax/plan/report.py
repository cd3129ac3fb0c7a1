"""`genie plan`: per-device memory, FLOPs and an HBM fit verdict for a train step, before launch.

Exact parts: parameter, optimizer-state and gradient bytes per device (from the real state's
shapes and the rules table on an abstract mesh, `state_bytes.py`). Analytic parts: activation
bytes and FLOPs (`models.py`, `st_stack.py`). `--xla` adds XLA's numbers for the same step,
compiled for simulated CPU devices (`xla_check.py`).
"""

import copy

import jax.numpy as jnp
import ml_collections

from genie_jax.plan.devices import GIB, device_name, fit_note, hbm_bytes
from genie_jax.plan.models import Layout, step_costs
from genie_jax.plan.state_bytes import PlanError, state_bytes
from genie_jax.train.sharding import rules_from_config
from genie_jax.train.tasks import TASKS, Task

MODELS = ("dynamics", "tokenizer", "lam")
_PLACEHOLDER = "(not read by genie plan)"


def planning_task(config: ml_collections.ConfigDict, model: str) -> Task:
    """The task `genie train <model>` would build. The dynamics task names the tokenizer and
    LAM runs it loads; planning reads no checkpoint, so empty workdirs are filled in."""
    if model == "dynamics":
        config = copy.deepcopy(config)
        config.tokenizer_workdir = config.tokenizer_workdir or _PLACEHOLDER
        config.lam_workdir = config.lam_workdir or _PLACEHOLDER
    return TASKS[model](config)


def _layout(config: ml_collections.ConfigDict, sizes: dict[str, int], batch: int) -> Layout:
    """Clips per device from the rules' activation batch axes (the loop's check, too)."""
    rules = dict(rules_from_config(config.get("logical_axis_rules")))
    batch_axes = rules.get("act_batch") or ()
    batch_axes = (batch_axes,) if isinstance(batch_axes, str) else tuple(batch_axes)
    parallel = 1
    for axis in batch_axes:
        parallel *= sizes[axis]
    if batch % parallel:
        raise PlanError(
            f"batch size {batch} is not divisible by the data-parallel size {parallel} "
            f"({' x '.join(f'{a}={sizes[a]}' for a in batch_axes)}); pass --batch-size"
        )
    tensor = sizes["tensor"] if rules.get("mlp") == "tensor" else 1
    return Layout(batch=batch // parallel, tensor=tensor, fsdp=sizes["fsdp"])


def _describe_stacks(costs) -> list[dict]:
    """What the analytic model assumed about each ST stack of the step."""
    return [
        {
            "name": name,
            "trained": trained,
            "layers": stack.layers,
            "dim": stack.dim,
            "frames": stack.frames,
            "tokens": stack.tokens,
            "remat": stack.remat,
            "scan": stack.scan,
            "compute_bytes": stack.compute_bytes,
        }
        for name, (stack, trained) in costs.stacks.items()
    ]


def make_plan(
    config: ml_collections.ConfigDict,
    model: str,
    sizes: dict[str, int],
    device: str,
    *,
    batch: int | None = None,
) -> dict:
    """The plan as a JSON-ready dict (bytes, FLOPs, verdict). Raises PlanError."""
    if model not in MODELS:
        raise PlanError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    try:
        hbm = hbm_bytes(device)
    except KeyError as error:
        raise PlanError(error.args[0]) from None
    batch = config[model].batch_size if batch is None else batch
    if batch < 1:
        raise PlanError(f"--batch-size must be positive, got {batch}")
    layout = _layout(config, sizes, batch)
    task = planning_task(config, model)
    rules = rules_from_config(config.get("logical_axis_rules"))
    state = state_bytes(task, sizes, rules)
    costs = step_costs(config, model, layout)
    global_costs = step_costs(config, model, Layout(batch=batch))
    param_dtype_bytes = jnp.dtype(config[model].model.param_dtype).itemsize
    per_device = dict(state["per_device"])
    peak = costs.peak_bytes(layout, per_device["gradients"], param_dtype_bytes)
    per_device["activations"] = int(peak["activations"])
    channels = task.example_inputs[0].shape[-1]
    per_device["batch"] = layout.batch * config.clip_len * config.frame_size**2 * channels
    held = ("params", "optimizer", "model_state", "batch")
    per_device["total"] = int(sum(per_device[k] for k in held) + peak["total"])
    devices = sizes["data"] * sizes["fsdp"] * sizes["tensor"]
    return {
        "model": model,
        "mesh": dict(sizes),
        "devices": devices,
        "device": device_name(device),
        "hbm_bytes": hbm,
        "global_batch": batch,
        "batch_per_device": layout.batch,
        "param_count": state["param_count"],
        "trainable_param_count": state["trainable_param_count"],
        "bytes_per_device": per_device,
        "peak": {
            "phase": peak["phase"],
            "activations": int(peak["activations"]),
            "gradients": int(peak["gradients"]),
        },
        "flops_per_step": {
            "global": global_costs.flops(),
            "per_device": costs.flops(),
            "per_device_xla_convention": costs.flops(xla_convention=True),
        },
        "stacks": _describe_stacks(costs),
        "fits": per_device["total"] <= hbm,
        "headroom_bytes": hbm - per_device["total"],
        "note": fit_note(per_device["total"], hbm, device),
    }


def add_xla(plan: dict, xla: dict) -> dict:
    """Puts XLA's numbers next to the analytic ones, with relative errors."""
    mine = plan["bytes_per_device"]
    pairs = {
        "arguments": (
            mine["params"] + mine["optimizer"] + mine["model_state"] + mine["batch"],
            xla["argument_bytes"],
        ),
        "temporaries": (plan["peak"]["activations"] + plan["peak"]["gradients"], xla["temp_bytes"]),
        "flops_per_device": (
            plan["flops_per_step"]["per_device_xla_convention"],
            xla["flops_per_device"],
        ),
    }
    caveats = []
    trained = [s for s in plan["stacks"] if s["trained"]]
    if any(s["remat"] != "none" and not s["scan"] for s in trained):
        caveats.append(
            "remat without scan_layers: XLA's CPU scheduler keeps the forward activations "
            "anyway (measured: the same temporaries as without remat); the analytic count "
            "assumes remat is honoured"
        )
    if any(s["compute_bytes"] == 2 for s in plan["stacks"]):
        caveats.append(
            "bfloat16 compute: XLA's CPU backend keeps fp32 buffers (measured: the paper "
            "preset's temporaries are about the same in bf16 and fp32), so XLA's temporaries "
            "exceed the analytic count, which assumes native bf16 as on TPU and GPU"
        )
    plan["xla"] = {
        **xla,
        "caveats": caveats,
        "comparison": {
            name: {"analytic": a, "xla": x, "error": (a - x) / x if x else None}
            for name, (a, x) in pairs.items()
        },
    }
    return plan


def _size(n: float) -> str:
    """Bytes in GiB, or in MiB below one GiB."""
    if abs(n) >= GIB:
        return f"{n / GIB:8.2f} GiB"
    return f"{n / 2**20:8.2f} MiB"


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def format_plan(plan: dict) -> str:
    """The plan as a human-readable table."""
    mesh = ",".join(f"{k}={v}" for k, v in plan["mesh"].items())
    b = plan["bytes_per_device"]
    lines = [
        f"genie plan: {plan['model']} train step on {plan['devices']} x {plan['device']} "
        f"(mesh {mesh}), batch {plan['global_batch']} ({plan['batch_per_device']} per device)",
        f"  parameters      {_count(plan['param_count'])} "
        f"({_count(plan['trainable_param_count'])} trained)",
        "  per device:",
    ]
    labels = {
        "params": "parameters",
        "optimizer": "optimizer state",
        "model_state": "model state",
        "gradients": "gradients",
        "activations": "activations",
        "batch": "input batch",
    }
    for key, label in labels.items():
        lines.append(f"    {label:16s}{_size(b[key])}")
    lines.append(f"    {'total':16s}{_size(b['total'])}   of {plan['hbm_bytes'] / GIB:.0f} GiB HBM")
    peak = plan["peak"]
    lines.append(
        f"    (total: the live peak, in the {peak['phase']} phase of the backward pass, when "
        f"{_size(peak['gradients']).strip()} of gradients exist)"
    )
    flops = plan["flops_per_step"]
    lines.append(
        f"  FLOPs per step  {flops['global']:.3e} global, {flops['per_device']:.3e} per device"
    )
    lines.append(f"  {plan['note']}")
    if "xla" in plan:
        header = "XLA, CPU compile of the real step, per device:"
        lines.append(f"  {header:50s}analytic |       XLA | error")
        labels = {
            "arguments": "arguments (state, batch)",
            "temporaries": "temporaries (grads, activations)",
            "flops_per_device": "FLOPs (a scanned body once)",
        }
        for name, row in plan["xla"]["comparison"].items():
            unit = (lambda v: f"{v:11.3e}") if name.startswith("flops") else _size
            error = "n/a" if row["error"] is None else f"{row['error']:+.1%}"
            lines.append(
                f"    {labels[name]:34s}{unit(row['analytic'])} | {unit(row['xla'])} | {error}"
            )
        lines += [f"    note: {caveat}" for caveat in plan["xla"]["caveats"]]
    return "\n".join(lines)
