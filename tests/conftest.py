"""Shared test setup: 8 simulated CPU devices, and one small real CoinRun dataset per session."""

import os
import shutil
import tempfile

import pytest


# `XLA_FLAGS` must be set before the first `import jax` anywhere in the test session. The 8
# simulated devices meet in a rendezvous for every collective; XLA aborts the process when one
# waits past `xla_cpu_collective_call_terminate_timeout_seconds` (40 s by default), which a
# starved device thread on a loaded 2-core machine can exceed. Two full-suite runs died with a
# silent SIGABRT inside an 8-device train step on such a machine; 600 s keeps a slow step a
# slow step.
#
# XLA's backend (LLVM) optimization is off: most tests compile many small programs and run each
# a few times, and this compiles them about a third faster (the WAM sharded-step file 47 -> 34 s
# on 2 cores). Results agree with the default build to float rounding, not bit for bit (3e-6 at
# most on a WAM step's parameters); tests that compare runs compile both sides alike. The long
# training run of test_wam_learns.py, where it would halve the speed, keeps XLA's defaults, and
# the tokenizer-overfit test compiles its one long-running step with them (133 -> 29 s, both
# measured on a busy machine).
def xla_flags(devices: int, fast_compile: bool = True) -> str:
    """The suite's `XLA_FLAGS` for a process with `devices` simulated CPU devices (the tests
    that start processes give them these too)."""
    flags = (
        f"--xla_force_host_platform_device_count={devices} "
        "--xla_cpu_collective_call_terminate_timeout_seconds=600"
    )
    return f"{flags} --xla_backend_optimization_level=0" if fast_compile else flags


os.environ.setdefault("XLA_FLAGS", xla_flags(8))

# Per-program compiler options that restore XLA's default backend optimization (level 3) for a
# runtime-bound program in a test process that compiles with it off:
# `jitted.lower(*args).compile(compiler_options=XLA_DEFAULT_OPTIMIZATION)`.
XLA_DEFAULT_OPTIMIZATION = {"xla_backend_optimization_level": 3}

# One XLA compilation cache per test run, shared by the xdist workers and the subprocesses the
# tests start (they inherit the environment): many tests compile the same tiny programs through
# fresh `jax.jit` closures, which the in-memory cache never matches. It starts empty, as on a
# clean CI machine, and is removed at the end of the run. Every program is cached, however fast
# it compiled: the eager ops (orbax's per-device slices at a save, initializers, metrics) compile
# in 0.03-0.06 s each, and each module's `jax.clear_caches()` (below) and each new process
# compiled them again; caching them took five checkpointing test modules from 125 to 109 CPU
# seconds (2026-12-03, against a 0.2 s floor).
_CREATED_CACHE_DIR = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CREATED_CACHE_DIR = tempfile.mkdtemp(prefix="genie-jax-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CREATED_CACHE_DIR
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_sessionfinish(session, exitstatus):
    if _CREATED_CACHE_DIR is not None:
        shutil.rmtree(_CREATED_CACHE_DIR, ignore_errors=True)


# 6 episodes give 4/1/1 per split; every episode reaches the 80-step cap, so the splits hold
# 40/10/10 clips of 8 frames. Builds in about 2 s.
COINRUN_TEST_SETTINGS = {"episodes": 6, "clip_len": 8, "max_steps": 80}


@pytest.fixture(scope="session")
def coinrun_settings() -> dict[str, int]:
    """The `build_coinrun` arguments `coinrun_dir` was built with."""
    return dict(COINRUN_TEST_SETTINGS)


@pytest.fixture(scope="session")
def coinrun_dir(tmp_path_factory) -> str:
    """Data dir holding a finished `coinrun_clips/clip8` dataset (64x64 frames)."""
    from genie_jax.data import build_coinrun  # TFDS is slow to import; only load it when used

    out_dir = tmp_path_factory.mktemp("coinrun")
    build_coinrun(out_dir, **COINRUN_TEST_SETTINGS)
    return str(out_dir)


def pytest_collection_modifyitems(config, items):
    """Modules marked `long_running(seconds=S)` run first, longest first; the rest keep their
    order. The suite runs on 2 xdist workers, one module at a time each (`--dist loadfile
    --no-loadscope-reorder`, pyproject.toml; xdist's own reorder puts the modules with the
    fewest tests last): a long module handed out last would run on one worker while the
    other sits idle at the end of the run."""

    def seconds(item) -> float:
        marker = item.get_closest_marker("long_running")
        return marker.kwargs["seconds"] if marker else 0.0

    items.sort(key=lambda item: -seconds(item))  # stable: ties keep the collection order


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops jit caches after each test module: the suite compiles hundreds of programs, and
    one long-lived process holding all of them reached 4 GB."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
