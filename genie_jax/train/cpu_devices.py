"""`--cpu-devices N|auto`: how many XLA devices a CPU process shows.

XLA's CPU backend runs one device's program on a thread pool, but much of a small model's step
(attention softmax, layer norms, transposes) keeps one core busy at a time. With one device
per core, the batch is split over the mesh's data axis like on any accelerator mesh and every
core works on its share: on 2 cores the `tiny` dynamics step went from 0.65 to 0.47 s (NOTES.md,
CPU use from 1.6 to 1.9 cores). The global batch must then divide over the devices, as on any
mesh. Unset, JAX's default stands (one device, or what `XLA_FLAGS` asks for).

It sets `jax_num_cpu_devices`, which JAX reads once, when it starts its backends: the option
works on a command's own process, not on a `main(argv)` called from Python after JAX has run.
"""

import argparse
import os


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_cpu_devices(text: str) -> int:
    """`auto` -> `usable_cores()`; else a positive integer."""
    if text == "auto":
        return usable_cores()
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(
            f"--cpu-devices takes a positive integer or auto, not {text!r}"
        )
    return count


def set_cpu_devices(count: int | None) -> None:
    """Asks JAX for `count` CPU devices (None: leave JAX's default)."""
    if count is None:
        return
    import jax  # here: a multi-process CLI forks its stderr helper before JAX is imported

    from genie_jax.config_loading import ConfigError

    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        raise ConfigError(
            f"--cpu-devices {count}: JAX has already started its devices in this process; "
            "give the option to a new `genie`/`wam` process"
        ) from None
