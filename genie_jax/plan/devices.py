"""High-bandwidth memory per accelerator chip, for `genie plan`'s fit check.

Sources (the vendors' own pages):
- TPU v4: 32 GiB HBM2 per chip, https://cloud.google.com/tpu/docs/v4
- TPU v5e: 16 GB HBM per chip, https://cloud.google.com/tpu/docs/v5e
- TPU v5p: 95 GB HBM2e per chip, https://cloud.google.com/tpu/docs/v5p
- TPU v6e (Trillium): 32 GB HBM per chip, https://cloud.google.com/tpu/docs/v6e
- NVIDIA H100-SXM5 80GB, H200-SXM5 141GB, A100 40GB / 80GB: the "Supported GPUs" table of
  the MIG user guide, https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-gpus.html
The vendors write "GB"; the table takes every size as GiB (HBM stacks come in binary sizes),
so the fit check is at most about 7% optimistic for a part whose "GB" is decimal: keep the
headroom the report asks for.
"""

GIB = 2**30

HBM_GIB: dict[str, float] = {
    "v4": 32,
    "v5e": 16,
    "v5p": 95,
    "v6e": 32,
    "h100": 80,
    "h200": 141,
    "a100-40": 40,
    "a100-80": 80,
}
ALIASES = {"a100": "a100-80", "v5litepod": "v5e", "trillium": "v6e"}

# Below this fraction of HBM left free, a plan is called tight: the runtime, XLA's own scratch
# buffers and fragmentation take a few percent, and the analytic activation count is an
# estimate (see genie_jax/plan/st_stack.py).
TIGHT_HEADROOM = 0.10


def hbm_bytes(device: str) -> int:
    """HBM bytes of one chip of `device` (a key of HBM_GIB, or an alias)."""
    name = ALIASES.get(device.lower(), device.lower())
    if name not in HBM_GIB:
        known = ", ".join(sorted(HBM_GIB) + sorted(ALIASES))
        raise KeyError(f"unknown device {device!r}; known: {known}")
    return int(HBM_GIB[name] * GIB)


def device_name(device: str) -> str:
    return ALIASES.get(device.lower(), device.lower())


def fit_note(total: int, hbm: int, device: str) -> str:
    """One line: fits or not, the headroom, and what to watch."""
    free = hbm - total
    if free < 0:
        return (
            f"does not fit: needs {total / GIB:.1f} GiB of {hbm / GIB:.0f} GiB "
            f"({-free / GIB:.1f} GiB over); shard more (fsdp), remat, or a smaller batch"
        )
    note = f"fits with {free / GIB:.1f} GiB ({free / hbm:.0%}) free of {hbm / GIB:.0f} GiB"
    if free < TIGHT_HEADROOM * hbm:
        note += "; tight: under 10% headroom for the runtime, XLA scratch and fragmentation"
    if device_name(device).startswith(("h1", "h2", "a1")) and total > 0.75 * hbm:
        # docs.jax.dev, "GPU memory allocation": the default preallocation is 75% of memory
        note += "; over the 75% JAX preallocates on GPU: raise XLA_PYTHON_CLIENT_MEM_FRACTION"
    return note
