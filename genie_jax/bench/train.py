"""`genie bench train`: speed, memory and MFU of one model's sharded train step.

The step is the real one: the task's pure step compiled by `jit_train_step` (explicit
shardings, donated state) on the config's mesh, from a freshly initialized state. It runs on a
synthetic batch of the shapes and dtypes the input pipeline yields, so no dataset is needed;
`step_time_s` is the median over timed steps, each blocked on, after compilation and
`warmup` steps; `tokens_per_s` counts video tokens (batch x frames x tokens per frame: the
model's own patch grid for the tokenizer and the LAM, the tokenizer's for the dynamics model
and the WAM). Pretrained parts (the dynamics model's tokenizer and LAM, the WAM's tokenizer)
are randomly initialized, never loaded: a step costs the same either way.

FLOPs come from XLA's cost analysis of the step as lowered, before it is partitioned over
devices and before attention becomes a kernel: the whole step's count, taken from a trace with
XLA's plain attention and every layer stack unrolled. The compiled step would not do: XLA
counts a loop body once (the CPU's chunked attention, scanned layers) and gives a custom call
no FLOPs (cuDNN's flash attention). Rematerialized blocks count twice, as they run. Per device
is that total over the number of devices; within 0.5% of the compiled CPU step's own count at
the tiny sizes (NOTES.md). The peak is measured
in the same process: one `matmul_size`-square matmul per device in the step's compute dtype,
sharded over the same devices. `mfu` is then model_flops_per_step / step_time_s /
measured_peak_flops: a fraction of what this machine does, not of a data-sheet figure.

With `config.data_dir` set the input pipeline is timed too, as the training loop uses it: the
next batch is read while the previous step runs; `input_wait_s` is the median time a step waits
for it.

Other packages (the WAM) bring their own `BenchModel`.
"""

import contextlib
import dataclasses
import json
import pathlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from genie_jax.config_loading import ConfigError
from genie_jax.data import DataError
from genie_jax.data.coinrun_builder import DATASET_NAME
from genie_jax.data.pipeline import make_train_iterator, to_global_batch
from genie_jax.nn.attention import accelerator_attention, attention_kernels
from genie_jax.nn.st_transformer import unrolled_layers
from genie_jax.train.mesh import make_mesh
from genie_jax.train.sharding import batch_sharding, rules_from_config
from genie_jax.train.state import (
    abstract_train_state,
    create_train_state,
    freeze_groups,
    make_optimizer,
)
from genie_jax.train.steps import jit_train_step
from genie_jax.train.tasks import TASKS, Task

GENIE_MODELS = ("tokenizer", "lam", "dynamics")
# Stand-in for the pretrained runs' workdirs: the bench initializes those parts randomly.
RANDOM_INIT = "<random init: not loaded by the benchmark>"

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """What the benchmark trains: a task, the size of its input, and a synthetic batch."""

    task: Task
    frames: int  # T of a batch
    tokens_per_frame: int  # N: video tokens of one frame
    dtype: str  # the model's compute dtype
    make_batch: Callable[[int, np.random.Generator], Batch]  # (batch size, rng) -> batch
    notes: tuple[str, ...] = ()


def video_batch(config: ml_collections.ConfigDict, channels: int = 3):
    """The clip pipeline's batch: `video` uint8 [B, T, H, W, C], `actions` int32 [B, T]."""

    def make(batch_size: int, rng: np.random.Generator) -> Batch:
        size = config.frame_size
        shape = (batch_size, config.clip_len, size, size, channels)
        return {
            "video": rng.integers(0, 256, shape, dtype=np.uint8),
            # The steps read only `video`; `actions` keeps the pipeline's layout.
            "actions": rng.integers(0, 15, (batch_size, config.clip_len), dtype=np.int32),
        }

    return make


def genie_bench_model(config: ml_collections.ConfigDict, name: str) -> BenchModel:
    """The tokenizer, LAM or dynamics task of an experiment config."""
    if name not in GENIE_MODELS:
        hint = " (the WAM: `wam bench train`)" if name == "wam" else ""
        raise ConfigError(f"unknown --model {name!r}; choose from {', '.join(GENIE_MODELS)}{hint}")
    notes = ()
    if name == "dynamics":
        config = config.copy_and_resolve_references()
        config.tokenizer_workdir = config.tokenizer_workdir or RANDOM_INIT
        config.lam_workdir = config.lam_workdir or RANDOM_INIT
        notes = ("tokenizer and LAM randomly initialized (no pretrained load)",)
    task = TASKS[name](config)
    model_config = task.model.tokenizer_config if name == "dynamics" else task.model.config
    dtype = (config.dynamics if name == "dynamics" else config[name]).model.dtype
    return BenchModel(
        task=task,
        frames=config.clip_len,
        tokens_per_frame=model_config.num_tokens,
        dtype=dtype,
        make_batch=video_batch(config, model_config.channels),
        notes=notes,
    )


def _timed_calls(fn: Callable[[], object], count: int) -> list[float]:
    """Seconds of each of `count` calls of `fn`, each blocked on."""
    times = []
    for _ in range(count):
        tic = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - tic)
    return times


def measure_peak_flops(mesh: Mesh, dtype: str, size: int, repeats: int | None = None) -> float:
    """FLOP/s of one [size, size] x [size, size] matmul on every mesh device at once, best
    of `repeats` (after a compiling call). By default 3 on CPU (seconds each) and 50 on an
    accelerator, where one matmul takes milliseconds: on an H200, best of 3 read 528 and
    662 TFLOP/s in two runs, short of the rate the clocks reach once they have ramped up."""
    if repeats is None:
        repeats = 3 if jax.default_backend() == "cpu" else 50
    devices = mesh.devices.size
    jnp_dtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))  # one matrix per device
    shape = (devices, size, size)
    make = jax.jit(lambda key: jax.random.normal(key, shape, jnp_dtype), out_shardings=sharding)
    a_XSS, b_XSS = make(jax.random.key(1)), make(jax.random.key(2))
    matmul = jax.jit(
        lambda a, b: jnp.einsum("xij,xjk->xik", a, b, preferred_element_type=jnp_dtype),
        out_shardings=sharding,
    )
    jax.block_until_ready(matmul(a_XSS, b_XSS))
    best = min(_timed_calls(lambda: matmul(a_XSS, b_XSS), repeats))
    return 2.0 * size**3 * devices / best


def peak_memory() -> tuple[int, str]:
    """(bytes, source): the devices' peak in use where the backend tracks it, else the
    process's peak resident set (CPU)."""
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats()
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    if peaks:
        return max(peaks), "device peak_bytes_in_use (max over local devices)"
    kib = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib, "process peak RSS"


def progress(message: str) -> None:
    """A phase of the benchmark, on stderr (the JSON line alone goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _flops(cost) -> float | None:
    """The FLOP count of an XLA cost analysis, or None where the backend gives none."""
    if isinstance(cost, list | tuple):  # older JAX: one dict per program
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def step_flops(task: Task, tx, mesh: Mesh, rules, batch: Batch, rng: jax.Array) -> float | None:
    """The whole step's FLOPs (see the module docstring): XLA's count of the lowered step,
    traced on an abstract state with plain, unchunked XLA attention and unrolled layers.

    The count is taken on one CPU device with the global batch (the same program before
    partitioning): a GPU client's analysis of a lowered module gives no FLOPs. Where no CPU
    backend is loaded, the step is lowered on `mesh` instead."""

    def plain_step(*step_args):  # a new function: jax would reuse an earlier trace
        return task.train_step(*step_args)

    try:
        cpu = jax.devices("cpu")[0]
        mesh = Mesh(np.array([cpu]).reshape((1,) * len(mesh.axis_names)), mesh.axis_names)
    except RuntimeError:  # JAX_PLATFORMS without cpu
        pass
    batch = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=batch_sharding(mesh)), batch
    )
    with accelerator_attention(), attention_kernels("xla"), unrolled_layers():
        state, shardings = abstract_train_state(task.model, tx, task.example_inputs, mesh, rules)
        rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype)  # placed nowhere yet: any mesh takes it
        lowered = jit_train_step(plain_step, mesh, shardings, rules).lower(state, batch, rng)
        return _flops(lowered.cost_analysis())


def default_matmul_size() -> int:
    """Side of the peak-FLOP/s matmul: 8192 on accelerators (a 4096 matmul leaves an H100
    short of its rate, which would inflate MFU), 4096 on CPU (a few seconds on 2 cores)."""
    return 4096 if jax.default_backend() == "cpu" else 8192


def cudnn_attention_calls(compiled) -> int:
    """Mentions of cuDNN's fused attention in the compiled step (its forward and backward
    calls): 0 when the attention kernel choice produced none."""
    try:
        text = compiled.as_text()
    except Exception:  # some backends give no text; then nothing is claimed
        return 0
    return text.count("__cudnn$fmha")


def _mesh(config: ml_collections.ConfigDict, batch_size: int) -> Mesh:
    try:
        mesh = make_mesh(config.mesh_shape)
    except ValueError as error:
        raise ConfigError(f"config.mesh_shape: {error}") from None
    data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size < 1 or batch_size % data_parallel or batch_size % jax.process_count():
        raise ConfigError(
            f"batch size {batch_size} is not a positive multiple of the data-parallel mesh size "
            f"{data_parallel} (mesh {dict(mesh.shape)}) and of the {jax.process_count()} processes"
        )
    return mesh


def _same_layout(real: Batch, synthetic: Batch) -> None:
    def layout(batch):
        return {k: (np.shape(v), np.asarray(v).dtype.name) for k, v in batch.items()}

    if layout(real) != layout(synthetic):
        raise DataError(
            f"the pipeline's batch {layout(real)} differs from the benchmarked step's "
            f"{layout(synthetic)} (check config.clip_len and config.frame_size against the data)"
        )


def time_input_pipeline(
    config: ml_collections.ConfigDict,
    bench: BenchModel,
    run_step: Callable,
    synthetic: Batch,
    *,
    batch_size: int,
    sharding: NamedSharding,
    steps: int,
    warmup: int,
) -> dict:
    """Trains on the real pipeline's batches as the loop does (the next batch is read while the
    previous step runs) and times each wait for a batch: `next` plus the hand-off to devices."""
    iterator = make_train_iterator(
        config.data_dir,
        "train",
        global_batch_size=batch_size,
        clip_len=config.clip_len,
        frame_size=config.frame_size,
        seed=config.seed,
        worker_count=config.data_workers,
        dataset=config.get("dataset", DATASET_NAME),
        operations=bench.task.train_operations,
    )
    waits, pending = [], None
    for i in range(warmup + steps):
        tic = time.perf_counter()
        local = next(iterator)
        wait = time.perf_counter() - tic
        if i == 0:
            _same_layout(local, synthetic)
        tic = time.perf_counter()
        batch = to_global_batch(local, sharding)
        wait += time.perf_counter() - tic
        metrics = run_step(batch)
        if pending is not None:
            jax.block_until_ready(pending)
        pending = metrics
        if i >= warmup:
            waits.append(wait)
    jax.block_until_ready(pending)
    return {
        "input_wait_s": statistics.median(waits),
        "input_wait_mean_s": statistics.fmean(waits),
        "input_wait_max_s": max(waits),
        "input_steps": steps,
        "input_workers": config.data_workers,
        "input_pipeline": f"timed: train split of {config.data_dir}, read while each step runs",
    }


def bench_train(
    config: ml_collections.ConfigDict,
    bench: BenchModel,
    *,
    steps: int = 10,
    warmup: int = 2,
    batch_size: int | None = None,
    matmul_size: int | None = None,
    attention: str = "auto",
    config_args: Sequence[str] = (),
    seed: int = 0,
) -> dict:
    """Times `bench`'s train step (and the input pipeline with `config.data_dir`); see the
    module docstring for what each figure means. `attention` forces an attention kernel
    (`attention_kernels`); `matmul_size` defaults to `default_matmul_size()`. `config_args`
    (`--config F.py:v --config.k=x ...`) only label the result."""
    matmul_size = matmul_size or default_matmul_size()
    if steps < 1 or warmup < 0 or matmul_size < 1:
        raise ConfigError(
            f"need steps >= 1, warmup >= 0, matmul size >= 1; got {steps}, {warmup}, {matmul_size}"
        )
    task = bench.task
    section = task.section
    batch_size = batch_size or section.batch_size
    mesh = _mesh(config, batch_size)
    rules = rules_from_config(config.get("logical_axis_rules"))
    tx = make_optimizer(total_steps=section.num_steps, **section.optimizer.to_dict())
    tx = freeze_groups(tx, task.frozen)
    with out_of_memory_as_config_error(batch_size):
        tic = time.perf_counter()
        state, shardings = create_train_state(
            task.model, tx, task.example_inputs, jax.random.key(config.seed), mesh, rules
        )
        jax.block_until_ready(state)
        progress(f"state initialized in {time.perf_counter() - tic:.0f} s")
        train_step = jit_train_step(task.train_step, mesh, shardings, rules)
        sharding = batch_sharding(mesh)
        local_rng = np.random.default_rng([seed, jax.process_index()])
        synthetic = bench.make_batch(batch_size // jax.process_count(), local_rng)
        batch = to_global_batch(synthetic, sharding)
        rng = jax.random.key(config.seed + 1)

        tic = time.perf_counter()
        with attention_kernels(attention):
            compiled = train_step.lower(state, batch, rng).compile()
        compile_s = time.perf_counter() - tic
        progress(f"step compiled in {compile_s:.0f} s")

        tic = time.perf_counter()
        model_flops = step_flops(task, tx, mesh, rules, batch, rng)
        progress(f"FLOPs counted in {time.perf_counter() - tic:.0f} s")
        metrics = {}

        def run_step(step_batch):
            nonlocal state, metrics
            state, metrics = compiled(state, step_batch, rng)  # the old state is donated
            return metrics

        def step_on_synthetic():
            run_step(batch)
            return state, metrics

        for _ in range(warmup):
            jax.block_until_ready(step_on_synthetic())
        times = _timed_calls(step_on_synthetic, steps)
        progress(f"{warmup} + {steps} steps run, median {statistics.median(times):.3f} s")
        loss = float(metrics["loss"])
        step_time_s = statistics.median(times)
        peak_bytes, peak_source = peak_memory()  # before the matmul adds its buffers
        peak_flops = measure_peak_flops(mesh, bench.dtype, matmul_size)
    num_devices = mesh.devices.size
    tokens = batch_size * bench.frames * bench.tokens_per_frame
    device = jax.devices()[0]
    spec, overrides = split_config_args(config_args)
    result = {
        "benchmark": "train",
        "model": task.name,
        "config": spec,
        "config_overrides": overrides,
        "variant": config.get("variant"),
        "data": "synthetic",
        "params": "random init",
        "notes": list(bench.notes),
        "device": f"{device.platform}:{device.device_kind}",
        "num_devices": num_devices,
        "process_count": jax.process_count(),
        "mesh": dict(mesh.shape),
        "dtype": bench.dtype,
        "batch_size": batch_size,
        "frames": bench.frames,
        "tokens_per_frame": bench.tokens_per_frame,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "compile_s": compile_s,
        "step_time_s": step_time_s,
        "step_time_min_s": min(times),
        "step_time_max_s": max(times),
        "steps_per_s": 1.0 / step_time_s,
        "tokens_per_s": tokens / step_time_s,
        "loss": loss,
        "peak_memory_bytes": peak_bytes,
        "peak_memory_source": peak_source,
        "attention": attention,
        "cudnn_attention_calls": cudnn_attention_calls(compiled),
        "matmul_size": matmul_size,
        "measured_peak_flops": peak_flops,
        "model_flops_per_step": model_flops,
        "model_flops_per_step_per_device": (
            None if model_flops is None else model_flops / num_devices
        ),
        "mfu": None if model_flops is None else model_flops / step_time_s / peak_flops,
    }
    if config.data_dir:
        result.update(
            time_input_pipeline(
                config,
                bench,
                run_step,
                synthetic,
                batch_size=batch_size,
                sharding=sharding,
                steps=steps,
                warmup=warmup,
            )
        )
    else:
        result.update(input_wait_s=None, input_pipeline="not measured: config.data_dir is empty")
    return result


@contextlib.contextmanager
def out_of_memory_as_config_error(batch_size: int):
    """A backend's out-of-memory error as one line that says what to change."""
    try:
        yield
    except jax.errors.JaxRuntimeError as error:
        first_line = (str(error).strip().splitlines() or [""])[0]
        if "RESOURCE_EXHAUSTED" not in first_line:
            raise
        raise ConfigError(
            f"the step at batch {batch_size} does not fit in device memory ({first_line[:160]}); "
            "lower --batch-size, rematerialize blocks (--config.MODEL.model.remat_policy=dots "
            "or full) or shard over more devices (config.mesh_shape)"
        ) from None


def split_config_args(argv: Sequence[str]) -> tuple[str, str]:
    """`--config F.py:v --config.k=x` -> ("F.py:v", "--config.k=x")."""
    spec, rest, i = "", [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            spec, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            spec = arg.removeprefix("--config=")
        else:
            rest.append(arg)
        i += 1
    return spec, " ".join(rest)


def emit(result: dict, out: str | None) -> None:
    """Prints the result as the last line on stdout (and writes it to `out`)."""
    line = json.dumps(result)
    if out:
        pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(out).write_text(line + "\n")
    print(line)
