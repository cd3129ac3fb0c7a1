"""`genie plan`: what a train step needs per device, before any accelerator is involved.

`make_plan` (report.py) puts together the exact state bytes (state_bytes.py), the analytic
activation bytes and FLOPs of the ST stacks (st_stack.py, models.py) and the HBM fit check
(devices.py); `xla_check.py` compiles the real step on simulated CPU devices to compare.
"""

from genie_jax.plan.report import add_xla, format_plan, make_plan
from genie_jax.plan.state_bytes import PlanError, parse_mesh

__all__ = ["PlanError", "add_xla", "format_plan", "make_plan", "parse_mesh"]
