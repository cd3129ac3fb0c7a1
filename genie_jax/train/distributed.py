"""One entry point for multi-process runs: `jax.distributed.initialize` when asked or detected.

Every process of a multi-host run (TPU pod slice, GPU nodes, or several local CPU processes)
runs the same command; `initialize_distributed` joins them before any JAX call touches a
device. Modes:

- `off`: never initialize (one process, whatever the environment says);
- `on`: always initialize; with the explicit triple (`--coordinator HOST:PORT
  --num-processes N --process-id I`, or the environment variables JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID) those arguments are passed, otherwise jax detects the
  cluster itself (Cloud TPU pod slice, SLURM, Open MPI);
- `auto` (the default): initialize only when a multi-process environment is detected: the
  explicit triple with N > 1, a Cloud TPU pod slice with more than one worker, or a SLURM
  step with more than one task. A single host is never initialized.

TPU detection reads the worker list a TPU VM exposes: TPU_WORKER_HOSTNAMES (or
TPU_PROCESS_ADDRESSES; GKE sets them), MEGASCALE_NUM_SLICES > 1 (several slices), and on a
Google Compute Engine VM the metadata attribute `worker-network-endpoints` (one entry per
worker of the slice). TPU_WORKER_ID / CLOUD_TPU_TASK_ID name this process but not the count,
so they decide nothing alone.
"""

import argparse
import dataclasses
import glob
import os
import pathlib
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from genie_jax.train.cpu_devices import parse_cpu_devices, set_cpu_devices
from genie_jax.train.runtime_log import lost_peer_line, rewrite_fatal_runtime_log

MODES = ("auto", "on", "off")
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
_GOOGLE_PCI_VENDOR = "0x1ae0"  # Google's PCI vendor id: TPU chips (and gVNIC) on GCE VMs
_METADATA_WORKERS = "computeMetadata/v1/instance/attributes/worker-network-endpoints"


class DistributedConfigError(ValueError):
    """A bad combination of distributed settings (one line)."""


# jax's own default: a dead peer is noticed within about this long (then every process exits).
DEFAULT_HEARTBEAT_TIMEOUT_S = 100
# Exit status of a process whose run lost a peer (distinct from 1, a crash, and 2, bad input).
PEER_LOST_EXIT = 3
# How a collective or the coordination service reports a process that died (gloo on CPU, NCCL on
# GPU, the coordination service's heartbeat on all backends).
_PEER_LOST_MARKERS = (
    "connection reset by peer",
    "connection closed by peer",
    "broken pipe",
    "gloo",
    "nccl",
    "heartbeat timeout",
    "tasks are unhealthy",
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `initialize_distributed` will do: `jax.distributed.initialize(**kwargs)` or not."""

    initialize: bool
    kwargs: dict[str, Any]  # empty: jax detects the cluster itself
    reason: str


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
    """The process layout after `initialize_distributed`, and how it was decided."""

    process_index: int
    process_count: int
    device_count: int
    local_device_count: int
    initialized: bool
    reason: str

    def line(self) -> str:
        return (
            f"distributed: process {self.process_index} of {self.process_count}, "
            f"{self.device_count} devices ({self.local_device_count} local); {self.reason}"
        )


def plan_distributed(
    mode: str = "auto",
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Decides whether and how to initialize; raises DistributedConfigError on bad settings.

    Explicit arguments win over the JAX_* environment variables, field by field.
    """
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise DistributedConfigError(
            f"--distributed must be one of {', '.join(MODES)}, got {mode!r}"
        )
    if mode == "off":
        flags = {"--coordinator": coordinator, "--num-processes": num_processes}
        flags["--process-id"] = process_id
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise DistributedConfigError(
                f"{', '.join(given)} given with --distributed off; use auto or on"
            )
        return Plan(False, {}, "single process (--distributed off)")
    explicit = _explicit_triple(coordinator, num_processes, process_id, environ)
    if explicit is not None:
        kwargs, source = explicit
        if mode == "auto" and kwargs["num_processes"] == 1:
            return Plan(False, {}, f"single process ({source} says 1 process)")
        return Plan(True, kwargs, f"initialized from {source}")
    if mode == "on":
        return Plan(True, {}, "initialized by jax's cluster detection (--distributed on)")
    detected = _detect_cluster(environ)
    if detected is None:
        return Plan(False, {}, "single process (auto: no multi-process environment detected)")
    return Plan(True, {}, f"initialized by jax's cluster detection (auto: {detected})")


def initialize_distributed(
    mode: str = "auto",
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
    log: bool = True,
    heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S,
    error_label: str | None = None,
) -> DistributedInfo:
    """Joins the processes of a multi-host run when `mode` asks for it or detects one.

    Must run before any other JAX call that touches devices. Prints one line: process index
    and count, global and local devices, and how that was decided. A process that stops
    answering for `heartbeat_timeout_s` (killed, preempted, its host gone) makes every other
    process of the run exit with an error instead of waiting for it forever. With
    `error_label` (the command, e.g. `genie train`; for a program's own process only: it forks
    a helper and takes over stderr), that error is one line opened by the label instead of
    jax's C++ abort log (`runtime_log.py`).
    """
    plan = plan_distributed(
        mode,
        coordinator=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        environ=environ,
    )
    if plan.initialize and error_label:
        who = "this process"
        if "process_id" in plan.kwargs:
            who = f"process {plan.kwargs['process_id']} of {plan.kwargs['num_processes']}"
        rewrite_fatal_runtime_log(error_label, who)  # before jax starts any thread
    import jax

    reason = plan.reason
    if plan.initialize:
        if jax.distributed.is_initialized():
            reason = "already initialized"
        else:
            # Cross-process collectives between CPU devices (the local multi-process test, CPU
            # hosts); GPU and TPU collectives do not use this setting.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(**plan.kwargs, heartbeat_timeout_seconds=heartbeat_timeout_s)
    info = DistributedInfo(
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        device_count=jax.device_count(),
        local_device_count=jax.local_device_count(),
        initialized=plan.initialize,
        reason=reason,
    )
    if log:
        print(info.line(), flush=True)
    return info


def peer_lost_message(error: BaseException) -> str | None:
    """One line for an error that means another process of this run died, else None.

    Only in a multi-process run: a collective whose peer is gone fails in the survivors, which
    cannot go on (the global arrays are incomplete). The line names the error's first line.
    """
    import jax

    if jax.process_count() < 2 or not isinstance(error, jax.errors.JaxRuntimeError):
        return None
    text = str(error).strip()
    if not any(marker in text.lower() for marker in _PEER_LOST_MARKERS):
        return None
    first = (text.splitlines() or [type(error).__name__])[0]
    return lost_peer_line(f"process {jax.process_index()} of {jax.process_count()}", first)


def exit_if_peer_lost(error: BaseException, label: str) -> None:
    """When `error` means a lost peer (`peer_lost_message`), prints `<label>: error: <line>`
    and ends the process at once with PEER_LOST_EXIT; returns otherwise.

    `os._exit`, not SystemExit: a normal exit runs jax's distributed shutdown, whose barrier
    cannot complete without the lost peer and aborts the process with a multi-line C++ log.
    """
    lost = peer_lost_message(error)
    if lost is None:
        return
    sys.stdout.flush()
    # A leading newline: a progress bar may hold the line.
    print(f"\n{label}: error: {lost}", file=sys.stderr, flush=True)
    os._exit(PEER_LOST_EXIT)


def add_cli_options(parser: argparse.ArgumentParser, *, in_subcommand: bool = False) -> None:
    """`--distributed {auto,on,off}` and the explicit triple, on a parser.

    On a subcommand the defaults are suppressed, so the options may come before or after the
    subcommand name without the subcommand resetting what the top level parsed.
    """

    def default(value):
        return argparse.SUPPRESS if in_subcommand else value

    group = parser.add_argument_group("multi-process (jax.distributed)")
    group.add_argument(
        "--distributed",
        choices=MODES,
        default=default("auto"),
        help="auto: initialize only when a multi-process environment is detected (default)",
    )
    group.add_argument(
        "--coordinator",
        default=default(None),
        metavar="HOST:PORT",
        help=f"process 0's address (default ${ENV_COORDINATOR})",
    )
    group.add_argument(
        "--num-processes",
        type=int,
        default=default(None),
        metavar="N",
        help=f"processes in all (default ${ENV_NUM_PROCESSES})",
    )
    group.add_argument(
        "--process-id",
        type=int,
        default=default(None),
        metavar="I",
        help=f"this process, 0..N-1 (default ${ENV_PROCESS_ID})",
    )
    group.add_argument(
        "--heartbeat-timeout",
        type=int,
        default=default(DEFAULT_HEARTBEAT_TIMEOUT_S),
        metavar="SECONDS",
        help="a process silent this long ends the whole run with an error "
        f"(default {DEFAULT_HEARTBEAT_TIMEOUT_S})",
    )
    parser.add_argument_group("devices").add_argument(
        "--cpu-devices",
        type=parse_cpu_devices,
        default=default(None),
        metavar="N|auto",
        help="CPU devices this process shows (auto: one per usable core; the batch is split "
        "over them); default: JAX's",
    )


def initialize_from_args(
    args: argparse.Namespace, error_label: str | None = None
) -> DistributedInfo:
    """`initialize_distributed` with the options `add_cli_options` put on `args` (after
    `--cpu-devices`, which must reach JAX before it starts)."""
    set_cpu_devices(getattr(args, "cpu_devices", None))
    return initialize_distributed(
        getattr(args, "distributed", "auto"),
        coordinator=getattr(args, "coordinator", None),
        num_processes=getattr(args, "num_processes", None),
        process_id=getattr(args, "process_id", None),
        heartbeat_timeout_s=getattr(args, "heartbeat_timeout", DEFAULT_HEARTBEAT_TIMEOUT_S),
        error_label=error_label,
    )


def _explicit_triple(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], str] | None:
    """The explicit (coordinator, N, I) from flags or JAX_* variables; None when none is set."""
    fields = {
        "coordinator": (coordinator, "--coordinator", ENV_COORDINATOR),
        "num_processes": (num_processes, "--num-processes", ENV_NUM_PROCESSES),
        "process_id": (process_id, "--process-id", ENV_PROCESS_ID),
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, (flag_value, flag, env) in fields.items():
        if flag_value is not None:
            values[key], sources[key] = flag_value, flag
        elif environ.get(env, "").strip():
            values[key], sources[key] = environ[env].strip(), env
    if not values:
        return None
    missing = [f"{fields[k][1]} (or ${fields[k][2]})" for k in fields if k not in values]
    if missing:
        given = ", ".join(sources.values())
        raise DistributedConfigError(f"{given} given without {' and '.join(missing)}")
    num = _as_int(values["num_processes"], sources["num_processes"])
    index = _as_int(values["process_id"], sources["process_id"])
    if num < 1:
        raise DistributedConfigError(f"{sources['num_processes']} must be at least 1, got {num}")
    if not 0 <= index < num:
        raise DistributedConfigError(
            f"{sources['process_id']} {index} is outside 0..{num - 1} for {num} processes"
        )
    address = str(values["coordinator"])
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedConfigError(
            f"{sources['coordinator']} must look like HOST:PORT, got {address!r}"
        )
    kwargs = {"coordinator_address": address, "num_processes": num, "process_id": index}
    return kwargs, "/".join(dict.fromkeys(sources.values()))


def _as_int(value: Any, source: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise DistributedConfigError(f"{source} must be an integer, got {value!r}") from None


def _detect_cluster(environ: Mapping[str, str]) -> str | None:
    """A description of the multi-process environment around us, or None on a single host."""
    hostnames = environ.get("TPU_WORKER_HOSTNAMES") or environ.get("TPU_PROCESS_ADDRESSES")
    if hostnames:
        workers = len([h for h in hostnames.split(",") if h.strip()])
        if workers > 1:
            return f"Cloud TPU pod slice with {workers} workers"
    slices = environ.get("MEGASCALE_NUM_SLICES", "")
    if slices.isdigit() and int(slices) > 1:
        return f"{slices} Cloud TPU slices"
    tasks = environ.get("SLURM_NTASKS", "")
    if tasks.isdigit() and int(tasks) > 1 and "SLURM_PROCID" in environ:
        return f"SLURM step with {tasks} tasks"
    if not hostnames:
        workers = tpu_vm_worker_count()
        if workers is not None and workers > 1:
            return f"Cloud TPU pod slice with {workers} workers (metadata)"
    return None


def tpu_vm_worker_count(timeout_s: float = 2.0) -> int | None:
    """Workers of this TPU VM's slice from the GCE metadata server; None off Google Cloud.

    Only asks where a Google PCI device is present, so hosts elsewhere make no network call.
    """
    if not any(_read(v) == _GOOGLE_PCI_VENDOR for v in glob.glob("/sys/bus/pci/devices/*/vendor")):
        return None
    host = os.environ.get("GCE_METADATA_IP", "metadata.google.internal")
    request = urllib.request.Request(
        f"http://{host}/{_METADATA_WORKERS}", headers={"Metadata-Flavor": "Google"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return None  # not a TPU VM (no such attribute) or no metadata server
    return len([w for w in text.split(",") if w.strip()]) or None


def _read(path: str) -> str:
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ""
